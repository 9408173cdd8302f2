"""Importing the reference repository (github.com/jiachenlei/maskdm) without its unused imports.

Its models/mask_uvit.py, gaussian_ddpm.py and datasets/masking_generator.py import torchvision,
PIL, pywt and tqdm but never use them on the paths our scripts run (and the PyPI torchvision
wheel does not load with the CPU torch). `StubImports` answers those imports with mock modules;
timm and einops stay real.

    sys.meta_path.insert(0, StubImports())
"""
import importlib.machinery
from unittest import mock


class StubImports:
    """Meta-path finder answering the reference's unused imports with mock modules."""
    NAMES = ("torchvision", "PIL", "pywt", "tqdm")

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.NAMES:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        m = mock.MagicMock(name=spec.name)
        m.__path__, m.__spec__, m.__name__, m.__version__ = [], spec, spec.name, "99.0.0"
        return m

    def exec_module(self, module):
        pass
