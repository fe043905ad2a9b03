"""aiohttp handlers for the stream REST API, mounted on ComfyUI's PromptServer routes."""
