// Reading a whole (small) text file at start-up or reload: the configuration and the files it
// names (credentials). Never on the data path.
#pragma once

#include <string>

#include "edgeproxy/result.h"

namespace edgeproxy {

// The file's bytes, read to its end (EINTR retried). An error names the path and errno's text:
// "cannot read 'PATH': No such file or directory".
Result<std::string> read_text_file(const std::string& path);

}  // namespace edgeproxy
