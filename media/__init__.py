"""Media: streaming MPEG-TS/H.264 decode and encode, audio passthrough, frame format conversion.

PyAV + numpy (torch only where ComfyUI tensors are produced); never imports ComfyUI.
"""
