"""Task suites as YAML, one folder each (installed as `imgbench.tasks`)."""
