"""The bottom layer: vocabulary shared by every feature. It imports nothing of the app."""
