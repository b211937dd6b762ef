"""`base`: plain generation by the model, the reference every method is compared with."""
