// The deployment files in deploy/: what can be checked on this machine
// without systemd running, a container runtime or a cluster. The systemd
// units go through `systemd-analyze verify`; every qilin configuration they
// carry goes through `qilin --check-config`; and the numbers that must agree
// across files (stop timeouts and graceful_timeout, body limits, ports, the
// socket path, the runtime libraries) are compared. nginx_test.cpp runs the
// nginx configuration for real.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <optional>
#include <set>
#include <sstream>

#include "tests/integration/harness.hpp"

namespace qilin::testing {
namespace {

const std::string kDeploy = QILIN_SOURCE_DIR "/deploy";

std::string find_program(const std::string& name) {
  std::vector<std::string> dirs = {"/usr/bin", "/bin", "/usr/sbin", "/sbin"};
  if (const char* path = std::getenv("PATH")) {
    std::stringstream entries(path);
    for (std::string dir; std::getline(entries, dir, ':');) dirs.push_back(dir);
  }
  for (const auto& dir : dirs)
    if (::access((dir + "/" + name).c_str(), X_OK) == 0) return dir + "/" + name;
  return {};
}

// Runs `argv` (argv[0] a path) to completion or for at most `limit`;
// stdout and stderr together.
RunResult run(std::vector<std::string> argv, std::chrono::milliseconds limit = 30s) {
  TempDir dir;
  const std::string output_path = dir.file("output");
  int output = ::open(output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  std::vector<char*> args;
  for (auto& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::dup2(output, STDOUT_FILENO);
    ::dup2(output, STDERR_FILENO);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(output);
  int status = 0;
  if (!eventually([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, limit)) {
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    return {-1,
            "timed out after " + std::to_string(limit.count()) + " ms\n" + read_file(output_path)};
  }
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(output_path)};
}

// The effective configuration `qilin --check-config [-c FILE]` prints.
YAML::Node effective_config(const std::string& file = "") {
  std::vector<std::string> args = {"--check-config"};
  if (!file.empty()) args.insert(args.end(), {"-c", file});
  auto result = run_qilin(args);
  if (result.code != 0)
    throw std::runtime_error("qilin --check-config " + file + " failed:\n" + result.output);
  return YAML::Load(result.output);
}

// The value of `Key=` in a unit file (the last one wins, as in systemd).
std::string unit_value(const std::string& unit, const std::string& key) {
  std::stringstream lines(unit);
  std::string value;
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(key + "=", 0) == 0) value = line.substr(key.size() + 1);
  return value;
}

std::vector<std::string> unit_values(const std::string& unit, const std::string& key) {
  std::stringstream lines(unit);
  std::vector<std::string> values;
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(key + "=", 0) == 0) values.push_back(line.substr(key.size() + 1));
  return values;
}

// The text between `open` and the next `close` after it, from `at` on.
std::optional<std::string> between(const std::string& text, const std::string& open,
                                   const std::string& close, size_t at = 0) {
  size_t start = text.find(open, at);
  if (start == std::string::npos) return std::nullopt;
  start += open.size();
  size_t end = text.find(close, start);
  if (end == std::string::npos) return std::nullopt;
  return text.substr(start, end - start);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

void replace_all(std::string& text, const std::string& from, const std::string& to) {
  for (size_t at = 0; (at = text.find(from, at)) != std::string::npos; at += to.size())
    text.replace(at, from.size(), to);
}

// --- systemd ---------------------------------------------------------------

TEST(Systemd, UnitsPassSystemdAnalyzeVerify) {
  const std::string analyze = find_program("systemd-analyze");
  if (analyze.empty()) GTEST_SKIP() << "systemd-analyze is not installed (Debian package systemd)";
  // verify insists that ExecStart's binary exists, so the copies under test
  // start the binary just built instead of /usr/local/bin/qilin.
  TempDir dir;
  std::string service = read_file(kDeploy + "/systemd/qilin.service");
  ASSERT_NE(service.find("ExecStart=/usr/local/bin/qilin "), std::string::npos);
  replace_all(service, "/usr/local/bin/qilin", QILIN_BINARY);
  dir.write("qilin.service", service);
  dir.write("qilin.socket", read_file(kDeploy + "/systemd/qilin.socket"));

  // Whether verify can work here at all (it needs no running systemd, but
  // a container may lack what it loads): a unit with nothing to complain about.
  dir.write("probe.service", std::string("[Service]\nExecStart=") + QILIN_BINARY + "\n");
  auto probe = run({analyze, "verify", dir.file("probe.service")});
  if (probe.code != 0)
    GTEST_SKIP() << "systemd-analyze verify cannot run here; on a trivial unit it said:\n"
                 << probe.output;

  auto result = run({analyze, "verify", dir.file("qilin.socket"), dir.file("qilin.service")});
  EXPECT_EQ(result.code, 0) << result.output;
  // verify exits 0 on warnings (an unknown key, a value it cannot parse), so
  // any line about our units is a failure too.
  std::stringstream lines(result.output);
  for (std::string line; std::getline(lines, line);)
    EXPECT_EQ(line.find("qilin"), std::string::npos) << line;
}

TEST(Systemd, ServiceMatchesQilinsSignalsAndTimeouts) {
  const std::string service = read_file(kDeploy + "/systemd/qilin.service");
  EXPECT_EQ(unit_value(service, "Type"), "notify");
  EXPECT_EQ(unit_value(service, "ExecStart"), "/usr/local/bin/qilin -c /etc/qilin/qilin.yaml");
  EXPECT_EQ(unit_value(service, "ExecReload"), "/bin/kill -HUP $MAINPID");
  EXPECT_EQ(unit_value(service, "KillSignal"), "SIGTERM");
  // systemd's KILL must come after qilin's own graceful_timeout.
  const int graceful = effective_config()["graceful_timeout"].as<int>();
  EXPECT_EQ(std::stoi(unit_value(service, "TimeoutStopSec")), graceful + 5);
  // The codes that restarting cannot fix (bad configuration, app load).
  EXPECT_EQ(unit_value(service, "RestartPreventExitStatus"), "2 4");
}

TEST(Systemd, SocketUnitAndNginxAgreeOnTheAddresses) {
  const std::string socket = read_file(kDeploy + "/systemd/qilin.socket");
  const std::vector<std::string> expected = {"127.0.0.1:8000", "/run/qilin/qilin.sock"};
  EXPECT_EQ(unit_values(socket, "ListenStream"), expected);
  const std::string nginx = read_file(kDeploy + "/nginx/qilin.conf");
  EXPECT_NE(nginx.find("server unix:/run/qilin/qilin.sock;"), std::string::npos);
  EXPECT_NE(nginx.find("server 127.0.0.1:8000;"), std::string::npos);
}

// --- nginx -----------------------------------------------------------------

TEST(Nginx, ClientMaxBodySizeIsQilinsLimitRequestBody) {
  const std::string nginx = read_file(kDeploy + "/nginx/qilin.conf");
  auto value = between(nginx, "\n    client_max_body_size ", ";");
  ASSERT_TRUE(value) << "no client_max_body_size in the server block";
  size_t digits = 0;
  long long bytes = std::stoll(*value, &digits);
  const std::string unit = value->substr(digits);
  if (unit == "k") bytes *= 1024;
  if (unit == "m") bytes *= 1024 * 1024;
  EXPECT_EQ(bytes, effective_config()["limit_request_body"].as<long long>());
}

// --- container and Kubernetes ----------------------------------------------

TEST(Container, ImageConfigurationIsValidAndListensOnTheExposedPort) {
  auto config = effective_config(kDeploy + "/container/qilin.yaml");
  ASSERT_EQ(config["bind"].size(), 1u);
  EXPECT_EQ(config["bind"][0].as<std::string>(), "0.0.0.0:8000");
  const std::string dockerfile = read_file(kDeploy + "/container/Dockerfile");
  EXPECT_NE(dockerfile.find("\nEXPOSE 8000\n"), std::string::npos);
  EXPECT_NE(dockerfile.find("\nSTOPSIGNAL SIGTERM\n"), std::string::npos);
  EXPECT_NE(dockerfile.find("COPY deploy/container/qilin.yaml /etc/qilin/qilin.yaml"),
            std::string::npos);
}

// Every library the binary links directly (DT_NEEDED) must be installed by
// the runtime stage, or the image builds fine and qilin fails to start.
TEST(Container, RuntimeStageInstallsEveryLibraryTheBinaryLinks) {
  const std::string readelf = find_program("readelf");
  const std::string ldd = find_program("ldd");
  const std::string dpkg_query = find_program("dpkg-query");
  if (readelf.empty() || ldd.empty() || dpkg_query.empty())
    GTEST_SKIP() << "needs readelf (binutils), ldd (libc-bin) and dpkg-query (dpkg)";
  const std::string dockerfile = read_file(kDeploy + "/container/Dockerfile");
  // The words of the runtime stage (after the last FROM).
  std::set<std::string> runtime_words;
  {
    std::stringstream words(dockerfile.substr(dockerfile.rfind("\nFROM ")));
    for (std::string word; words >> word;) runtime_words.insert(word);
  }

  std::set<std::string> needed;
  auto dynamic = run({readelf, "-d", QILIN_BINARY});
  ASSERT_EQ(dynamic.code, 0) << dynamic.output;
  for (const auto& line :
       lines_of(dynamic.output))  // " 0x.. (NEEDED) Shared library: [libfmt.so.9]"
    if (line.find("(NEEDED)") != std::string::npos)
      if (auto soname = between(line, "[", "]")) needed.insert(*soname);
  ASSERT_FALSE(needed.empty()) << dynamic.output;

  // soname => path, as the loader resolves it here.
  auto resolved = run({ldd, QILIN_BINARY});
  ASSERT_EQ(resolved.code, 0) << resolved.output;
  // In the base image already (debian:bookworm-slim), or only in a sanitizer build.
  const std::set<std::string> ignored = {"libc6", "libgcc-s1", "libstdc++6", "libasan8",
                                         "libubsan1"};
  size_t checked = 0;
  for (const auto& line :
       lines_of(resolved.output)) {  // "\tlibfmt.so.9 => /lib/.../libfmt.so.9 (0x..)"
    std::stringstream fields(line);
    std::string soname, arrow, path;
    if (!(fields >> soname >> arrow >> path) || arrow != "=>" || !needed.count(soname)) continue;
    // usrmerge: the loader says /lib/..., dpkg's database may say /usr/lib/...
    auto owner = run({dpkg_query, "-S", path});
    if (owner.code != 0 && path.rfind("/lib/", 0) == 0)
      owner = run({dpkg_query, "-S", "/usr" + path});
    if (owner.code != 0 && path.rfind("/usr/lib/", 0) == 0)
      owner = run({dpkg_query, "-S", path.substr(4)});
    ASSERT_EQ(owner.code, 0) << "no Debian package owns " << path << ":\n" << owner.output;
    std::string package = owner.output.substr(0, owner.output.find_first_of(":,"));
    ++checked;
    if (ignored.count(package)) continue;
    EXPECT_TRUE(runtime_words.count(package))
        << soname << " comes from Debian package " << package
        << ", which the runtime stage of deploy/container/Dockerfile does not install";
  }
  EXPECT_EQ(checked, needed.size()) << "ldd did not resolve every DT_NEEDED entry:\n"
                                    << resolved.output;
}

YAML::Node find_kind(const std::vector<YAML::Node>& documents, const std::string& kind) {
  for (const auto& document : documents)
    if (document["kind"] && document["kind"].as<std::string>() == kind) return document;
  throw std::runtime_error("deploy/k8s/qilin.yaml has no " + kind);
}

TEST(Kubernetes, ManifestParsesAndAgreesWithTheQilinConfigItMounts) {
  const auto documents = YAML::LoadAllFromFile(kDeploy + "/k8s/qilin.yaml");
  ASSERT_EQ(documents.size(), 3u);
  const auto config_map = find_kind(documents, "ConfigMap");
  const auto deployment = find_kind(documents, "Deployment");
  const auto service = find_kind(documents, "Service");

  // The qilin.yaml inside the ConfigMap is a configuration qilin accepts.
  TempDir dir;
  dir.write("qilin.yaml", config_map["data"]["qilin.yaml"].as<std::string>());
  const auto config = effective_config(dir.file("qilin.yaml"));
  const int graceful = config["graceful_timeout"].as<int>();
  const std::string bind = config["bind"][0].as<std::string>();
  const int port = std::stoi(bind.substr(bind.rfind(':') + 1));

  EXPECT_EQ(deployment["spec"]["replicas"].as<int>(), 3);
  const auto pod = deployment["spec"]["template"]["spec"];
  const auto labels = deployment["spec"]["template"]["metadata"]["labels"];
  for (const auto& selector :
       {deployment["spec"]["selector"]["matchLabels"], service["spec"]["selector"]})
    for (const auto& label : selector)
      EXPECT_EQ(labels[label.first.as<std::string>()].as<std::string>(),
                label.second.as<std::string>());

  ASSERT_EQ(pod["containers"].size(), 1u);
  const auto container = pod["containers"][0];
  const auto container_port = container["ports"][0];
  EXPECT_EQ(container_port["containerPort"].as<int>(), port);
  const std::string port_name = container_port["name"].as<std::string>();
  for (const char* probe : {"readinessProbe", "livenessProbe"}) {
    EXPECT_EQ(container[probe]["httpGet"]["path"].as<std::string>(), "/") << probe;
    EXPECT_EQ(container[probe]["httpGet"]["port"].as<std::string>(), port_name) << probe;
  }
  EXPECT_EQ(service["spec"]["ports"][0]["targetPort"].as<std::string>(), port_name);

  // KILL comes after preStop (which the grace period includes) plus
  // qilin's graceful_timeout, with 5 s to spare.
  const auto sleep = container["lifecycle"]["preStop"]["exec"]["command"];
  ASSERT_EQ(sleep[0].as<std::string>(), "sleep");
  EXPECT_EQ(pod["terminationGracePeriodSeconds"].as<int>(), sleep[1].as<int>() + graceful + 5);

  for (const char* kind : {"requests", "limits"})
    for (const char* resource : {"cpu", "memory"})
      EXPECT_TRUE(container["resources"][kind][resource]) << kind << "." << resource;

  // The ConfigMap is what qilin reads: mounted where the image's -c points.
  EXPECT_EQ(container["volumeMounts"][0]["mountPath"].as<std::string>(), "/etc/qilin");
  EXPECT_EQ(pod["volumes"][0]["configMap"]["name"].as<std::string>(),
            config_map["metadata"]["name"].as<std::string>());
}

}  // namespace
}  // namespace qilin::testing
