"""A ComfyUI with this pack as a Livepeer worker: events channel, health, BYOC routes, registration,
data output, metrics (issue 12). ComfyUI-free: it reads the stream registry and its sessions."""
