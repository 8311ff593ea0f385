"""Relabeling strategies: which other tasks a trajectory (or a minibatch) is stored or scored under.

Trajectory-time (``relabel`` -> tasks [B, m, Z]): ``basic`` (none), ``random_tasks`` (random),
``reward``, ``advantage``, ``air``, ``her``; ``candidates`` holds their shared K-candidate machinery.
Sample-time (``relabel_batch``): ``random_tasks`` (continual random), ``hipi``.
"""
