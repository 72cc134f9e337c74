__version__ = "0.1.0"

import os as _os
# TensorFlow's oneDNN kernels run the 3-D convolutions of the 3DGAN 5-15x faster on x86 CPUs
# than its default kernels (measured in nbs/03_device.ipynb). They must be chosen before
# TensorFlow is imported; set TF_ENABLE_ONEDNN_OPTS=0 to opt out.
_os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')
