"""The shapes world (DESIGN §8): coloured circles, squares and triangles on a 32×32 canvas.

grammar (captions + exact specs + splits), render (ground-truth pictures), checker (the world's
GenEval), scorer (`shapes-exact`), tasks (prompt loaders), and the trained model (`shapes`).
Nothing here imports torch at import time.
"""
