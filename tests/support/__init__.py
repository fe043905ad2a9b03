"""Helpers shared by the test suite (real ComfyUI subprocess, ...); imported as ``support``."""
