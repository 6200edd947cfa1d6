# Design: placeholder, replaced by the full kernel set.
cdef extern from *:
    """
    #ifdef _OPENMP
    #define NNC_OPENMP 1
    #else
    #define NNC_OPENMP 0
    #endif
    """
    int NNC_OPENMP

OPENMP = bool(NNC_OPENMP)
