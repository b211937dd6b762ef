"""`dummy`: a torch-free method for pipeline tests (implemented in imgbench.testing)."""
