"""What every room shares: errors, argument checks, the plug-in registry, the YAML config and
table formatting. Imports nothing else of torchnas."""
