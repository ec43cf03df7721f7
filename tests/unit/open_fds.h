// Unit-test helper: the number of entries in /proc/self/fd, compared before and after to check
// that code under test closes every descriptor it opened.
#pragma once

#include <dirent.h>

namespace edgeproxy {

// -1 if /proc/self/fd cannot be read. Counts "." and ".." too: compare, never read it as a count.
inline int OpenFds() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  while (readdir(d) != nullptr) ++n;
  closedir(d);
  return n;
}

}  // namespace edgeproxy
