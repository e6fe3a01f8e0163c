/* Pieces every GIL-free loop shares that are not format rules (those are in _rules.h).

   The stop flag: a loop reads it between two work units (a directory entry, a map,
   a chunk of a file, a page of a listing) and returns early once it is set. Python
   sets it from the main thread when SIGINT or SIGTERM arrives, then joins the
   thread running the loop, and only then lets the interpreter free anything. */
#ifndef AV_NATIVE_H
#define AV_NATIVE_H

static inline int av_stopped(const int *flag)
{
    return __atomic_load_n(flag, __ATOMIC_RELAXED);
}

static inline void av_request_stop(int *flag)
{
    __atomic_store_n(flag, 1, __ATOMIC_RELAXED);
}

#endif
