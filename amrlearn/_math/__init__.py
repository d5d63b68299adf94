"""Pure maths shared by several layers of amrlearn.

Functions of arrays and tensors only, with no estimator state: each equation that more
than one layer needs (metrics, linear_model, neural, attacks) is written here once.
These modules import only numpy, torch, scipy and :mod:`amrlearn.utils`; torch is
imported inside the functions that need it, so that the numpy forms (and the exact
linear margins that use them) never import torch.

* :mod:`._margin`: the signed multiclass margin of a linear layer, eq. (6) and (14),
  in numpy and torch forms side by side;
* :mod:`._deepfool`: DeepFool's linearized jumps, used by the attack and by Deep
  Defense.
"""
