// Placeholder: the optional OpenBLAS addon build lands with the native kernel.
