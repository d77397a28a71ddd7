"""What a run leaves in its run directory: the store (run.sqlite), the resolved config
(config.json), lineage and the reports. Below the jobs, so search, bench and train all use it."""
