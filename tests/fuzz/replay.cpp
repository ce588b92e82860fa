// make test's run of a fuzz target, without libFuzzer (any compiler): every
// seed, then a fixed series of mutations of them, the same series on every
// run, through the target's LLVMFuzzerTestOneInput under ASan and UBSan.
// Coverage-guided search is make fuzz's job; this keeps what the seeds and
// their near neighbours reach from breaking. Linked once per target
// (session_fuzz_replay, config_fuzz_replay).
//
//   X_fuzz_replay SEEDS_DIR [--mutations M]   run the seeds and M mutations (200,000)
//   X_fuzz_replay SEEDS_DIR --write N F        write input N to F, to run it alone
//                                              (the libFuzzer build takes it as an argument)
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define QILIN_SANITIZER_HOOKS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/common_interface_defs.h>
#define QILIN_SANITIZER_HOOKS 1
#endif
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

constexpr uint64_t kDefaultMutations = 200000;
using Input = std::vector<uint8_t>;

// A finding (the target's abort, a sanitizer's report) ends the process: say
// which input it was, from a signal handler or the sanitizer's last words.
volatile uint64_t running = 0;
void name_the_input() {
  char line[64];
  char* end = line + sizeof line;
  char* at = end;
  *--at = '\n';
  uint64_t number = running;
  do {
    *--at = static_cast<char>('0' + number % 10);
    number /= 10;
  } while (number != 0);
  static constexpr char kSaid[] = "fuzz replay: the finding is input ";
  (void)!::write(STDERR_FILENO, kSaid, sizeof kSaid - 1);
  (void)!::write(STDERR_FILENO, at, static_cast<size_t>(end - at));
}
void on_abort(int) {
  name_the_input();
  std::signal(SIGABRT, SIG_DFL);
  std::raise(SIGABRT);
}

std::vector<Input> read_seeds(const std::filesystem::path& directory) {
  std::vector<std::filesystem::path> paths;
  for (const auto& entry : std::filesystem::directory_iterator(directory))
    if (entry.is_regular_file()) paths.push_back(entry.path());
  std::sort(paths.begin(), paths.end());  // a fixed order: input N is the same input every run
  std::vector<Input> seeds;
  for (const auto& path : paths) {
    std::ifstream file(path, std::ios::binary);
    seeds.emplace_back(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
  }
  return seeds;
}

// xorshift64: the same numbers everywhere, unlike std's distributions.
struct Random {
  uint64_t state = 0x9e3779b97f4a7c15u;
  uint64_t next() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  }
  size_t below(size_t bound) { return bound == 0 ? 0 : next() % bound; }
};

// libFuzzer's simplest moves: change, insert, erase, repeat a run, splice.
Input mutate(const std::vector<Input>& seeds, Random& random) {
  Input input = seeds[random.below(seeds.size())];
  const size_t moves = 1 + random.below(4);
  for (size_t move = 0; move < moves; ++move) {
    const size_t at = random.below(input.size() + 1);
    switch (random.below(5)) {
      case 0:
        if (at < input.size()) input[at] = static_cast<uint8_t>(random.next());
        break;
      case 1:
        input.insert(input.begin() + static_cast<std::ptrdiff_t>(at),
                     static_cast<uint8_t>(random.next()));
        break;
      case 2:
        if (at < input.size())
          input.erase(input.begin() + static_cast<std::ptrdiff_t>(at),
                      input.begin() + static_cast<std::ptrdiff_t>(
                                          std::min(input.size(), at + 1 + random.below(8))));
        break;
      case 3: {
        const size_t length = std::min(input.size() - at, 1 + random.below(16));
        const Input run(input.begin() + static_cast<std::ptrdiff_t>(at),
                        input.begin() + static_cast<std::ptrdiff_t>(at + length));
        input.insert(input.begin() + static_cast<std::ptrdiff_t>(at), run.begin(), run.end());
        break;
      }
      default: {
        const Input& other = seeds[random.below(seeds.size())];
        input.resize(at);
        input.insert(input.end(), other.begin() + static_cast<std::ptrdiff_t>(random.below(other.size())),
                     other.end());
        break;
      }
    }
  }
  return input;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string option = argc > 2 ? argv[2] : "";
  const bool writing = argc == 5 && option == "--write";
  if (argc != 2 && !writing && !(argc == 4 && option == "--mutations")) {
    std::fprintf(stderr, "usage: %s SEEDS_DIR [--mutations M | --write N FILE]\n", argv[0]);
    return 2;
  }
  const std::vector<Input> seeds = read_seeds(argv[1]);
  if (seeds.empty()) {
    std::fprintf(stderr, "%s: no seeds in %s\n", argv[0], argv[1]);
    return 1;
  }
  const uint64_t wanted = writing ? std::strtoull(argv[3], nullptr, 10) : 0;
  const uint64_t mutations =
      argc == 4 ? std::strtoull(argv[3], nullptr, 10) : writing ? wanted + 1 : kDefaultMutations;
  std::signal(SIGABRT, on_abort);
#ifdef QILIN_SANITIZER_HOOKS
  __sanitizer_set_death_callback(name_the_input);
#endif
  Random random;
  for (uint64_t number = 0; number < seeds.size() + mutations; ++number) {
    const Input input = number < seeds.size() ? seeds[number] : mutate(seeds, random);
    if (writing) {
      if (number != wanted) continue;
      std::ofstream(argv[4], std::ios::binary)
          .write(reinterpret_cast<const char*>(input.data()),
                 static_cast<std::streamsize>(input.size()));
      return 0;
    }
    running = number;
    LLVMFuzzerTestOneInput(input.data(), input.size());
  }
  std::printf("%s: %zu seeds and %llu mutations, no finding\n", argv[0], seeds.size(),
              static_cast<unsigned long long>(mutations));
  return 0;
}
