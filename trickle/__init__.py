"""Trickle protocol: async client (subscriber, publisher, JSON channels) and the dev relay server.

Pure aiohttp; never imports ComfyUI or torch.
"""
