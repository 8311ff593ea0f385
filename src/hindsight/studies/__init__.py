"""Comparative studies: a grid of runs over a base spec (``hindsight study``) and their report
(``hindsight report``)."""
