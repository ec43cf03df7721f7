// The replay executables' main (fuzz_replay_<target>, tests/fuzz/CMakeLists.txt): runs every file
// named on the command line, and every regular file under a directory named there (sorted), once
// through the target's LLVMFuzzerTestOneInput, as libFuzzer would run a corpus. A target's
// finding aborts; an unreadable file or an empty directory fails with exit code 1.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

#include "fuzz_util.h"

namespace {

bool run_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "replay: cannot read %s\n", path.c_str());
    return false;
  }
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // A copy of exactly the input's size, as libFuzzer gives it: ASan sees a read past the end.
  std::vector<uint8_t> copy(bytes.begin(), bytes.end());
  // libFuzzer never passes a null pointer, even for an empty input.
  static uint8_t none = 0;
  LLVMFuzzerTestOneInput(copy.empty() ? &none : copy.data(), copy.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path arg(argv[i]);
    std::error_code ec;
    if (std::filesystem::is_directory(arg, ec)) {
      for (const auto& entry : std::filesystem::recursive_directory_iterator(arg, ec)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
      }
    } else {
      files.push_back(arg);
    }
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    std::fprintf(stderr, "replay: no input files\n");
    return 1;
  }
  for (const auto& f : files) {
    if (!run_file(f)) return 1;
  }
  std::printf("replay: %zu inputs, no finding\n", files.size());
  return 0;
}
