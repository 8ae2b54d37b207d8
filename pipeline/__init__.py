"""The `emopy` command line and what it runs: input pipelines, training, evaluation, drawing."""
