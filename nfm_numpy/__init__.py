"""nfm_numpy: Neural Factorization Machines (He & Chua, SIGIR 2017) in plain NumPy,
with every backward pass derived by hand and checked, on NumPy or CuPy arrays."""
from . import backend, gradcheck, layers, losses, optim
from .data import Batch, Dataset, from_csr, make_batch
from .layers import RowGrad
from .model import FM, NFM, build

__version__ = "0.1.0"
__all__ = ["NFM", "FM", "build", "Batch", "Dataset", "make_batch", "from_csr", "RowGrad",
           "backend", "layers", "losses", "gradcheck", "optim"]
