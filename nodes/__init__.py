"""V3 nodes TrickleInput and TrickleOutput.

comfystream's LoadTensor/SaveTensor are not registered (an installed comfystream keeps its own); stream
workflows using them are mapped to our nodes at start, see ``streams.workflow``.
"""
