/*  tern_version.h - the release of tern, one number for every part of it.

    Written once, here: CMakeLists.txt reads these three lines (as libzmq's
    reads zmq.h), so they alone name libtern.so.MAJOR, tern.pc's Version,
    ternd's and ternctl's --version and the status reply. In protocol/
    because every layer links it; `make install` puts it beside tern.h,
    which includes it. tern_version() gives the library a program runs with.
*/
#ifndef TERN_VERSION_H_INCLUDED
#define TERN_VERSION_H_INCLUDED

#define TERN_VERSION_MAJOR 0
#define TERN_VERSION_MINOR 1
#define TERN_VERSION_PATCH 0

#endif
