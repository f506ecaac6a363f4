"""Host integrations: the files a VJ drops into TouchDesigner, Ableton / Max for Live,
TouchOSC, OBS and Resolume, generated from the parameter registry and the presets.

`livevace patches build` writes them under the top-level `patches/` folder and
`livevace patches check` reports drift, so an address, a range or a choice in a host file
can never disagree with the node. One small module per host; `build.py` collects them.
"""
