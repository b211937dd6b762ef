"""`reroll`: plain generation with fresh noise, the second-sample control for any two-generation method."""
