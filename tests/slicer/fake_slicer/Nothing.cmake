# Stand-in for Slicer's extension config generation and ExtensionCPack: nothing to do in the test.
