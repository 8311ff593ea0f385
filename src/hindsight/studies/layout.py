"""A study directory's own files (a run directory's are ``hindsight.rundir.RunDir``'s), readable without torch.

``study.resolved.yaml`` (the study as run: base inlined, ``--set`` applied; a study file kept in the same
folder is never overwritten), ``manifest.json`` (each run's id, method, family, seed, epochs),
``status.json`` (each run's state, rewritten as it changes) and ``runs/<id>/``: a run directory plus
log.txt, and error.txt when the run failed.

With ``--population N`` the seeds of a configuration train together: ``populations/<job>/`` holds the
population's spec.yaml, checkpoint.pt, log.txt (and error.txt), and each member writes its planned run's
``runs/<id>/`` (spec.yaml, metrics.jsonl, error.txt) with ``population.json`` naming the job directory
in place of its own checkpoint.

With ``--backend ray`` the study folder ends the same; ``tune/`` holds the Tune experiment (trials'
checkpoints, the experiment's state) unless ``--storage`` puts it elsewhere.
"""

RUNS_DIR = "runs"
STUDY_FILE = "study.resolved.yaml"
MANIFEST_FILE = "manifest.json"
STATUS_FILE = "status.json"
POPULATIONS_DIR = "populations"
TUNE_DIR = "tune"
