"""Seeing what was learnt: policy videos (``hindsight render``) and relabeling pictures
(``hindsight relabel-picture``), rendered headless by MuJoCo through dm_control.

Modules: ``views`` (per-family cameras, scene markers, task read-outs and drawings), ``video``
(checkpoint loading, rollouts with frames, MP4/GIF writers), ``pictures`` (matplotlib figures),
``cli`` (the two commands).
"""
