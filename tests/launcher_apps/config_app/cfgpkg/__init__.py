"""A package whose configs Hydra finds as pkg://cfgpkg.conf."""
