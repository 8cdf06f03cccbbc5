"""The `memeatlas` commands, one module per step: option parsing, one library call, a summary.

Command modules may import any layer; library modules never import these.
"""
