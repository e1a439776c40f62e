"""One thin entry point per dvc.yaml stage: `python -m keeptrash.stages.<name>`."""
