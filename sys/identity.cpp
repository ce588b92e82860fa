#include "sys/identity.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <vector>

#include "sys/error.hpp"

namespace qilin::sys {
namespace {

template <class Id>
std::optional<Id> as_number(std::string_view text) {
  Id value{};
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// The *_r lookups write into a caller's buffer; ERANGE asks for a bigger
// one. `lookup(buffer, size)` returns the call's error and keeps what it
// needs from the entry before the buffer goes.
template <class Lookup>
void look_up(Lookup lookup) {
  for (size_t size = 4096; size <= (size_t{1} << 20); size *= 4) {
    std::vector<char> buffer(size);
    if (lookup(buffer.data(), buffer.size()) != ERANGE) return;
  }
}

}  // namespace

std::optional<Account> find_user(std::string_view name_or_uid) {
  const auto uid = as_number<uid_t>(name_or_uid);
  const std::string name(name_or_uid);
  std::optional<Account> account;
  look_up([&](char* buffer, size_t size) {
    passwd entry{};
    passwd* found = nullptr;
    const int error = uid ? ::getpwuid_r(*uid, &entry, buffer, size, &found)
                          : ::getpwnam_r(name.c_str(), &entry, buffer, size, &found);
    if (found != nullptr)
      account =
          Account{.uid = found->pw_uid, .primary_group = found->pw_gid, .name = found->pw_name};
    return error;
  });
  if (!account && uid) account = Account{.uid = *uid, .primary_group = std::nullopt, .name = {}};
  return account;
}

std::optional<gid_t> find_group(std::string_view name_or_gid) {
  if (auto gid = as_number<gid_t>(name_or_gid)) return gid;
  const std::string name(name_or_gid);
  std::optional<gid_t> gid;
  look_up([&](char* buffer, size_t size) {
    group entry{};
    group* found = nullptr;
    const int error = ::getgrnam_r(name.c_str(), &entry, buffer, size, &found);
    if (found != nullptr) gid = found->gr_gid;
    return error;
  });
  return gid;
}

bool can_become(const Identity& identity) noexcept {
  if (::geteuid() == 0) return true;
  return identity.uid == ::geteuid() && identity.gid == ::getegid();
}

void become(const Identity& identity) {
  if (identity.uid == ::geteuid() && identity.gid == ::getegid() && ::geteuid() != 0) return;
  // Supplementary groups first: root's own (0 among them) must not follow
  // the worker into its new identity, as they would if only setgid were called.
  if (identity.user.empty()) {
    if (::setgroups(1, &identity.gid) != 0) throw SysError("setgroups", errno);
  } else if (::initgroups(identity.user.c_str(), identity.gid) != 0) {
    throw SysError("initgroups", errno);
  }
  if (::setgid(identity.gid) != 0) throw SysError("setgid", errno);
  if (::setuid(identity.uid) != 0) throw SysError("setuid", errno);
  // setuid from root sets all three uids; had it not, root could come back.
  if (identity.uid != 0 && ::setuid(0) == 0)
    throw SysError("setuid(0) after giving root up", EPERM);
}

void hand_over(const std::string& path, const Identity& identity) {
  if (::geteuid() != 0) return;
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0 || !(S_ISREG(info.st_mode) || S_ISSOCK(info.st_mode)))
    return;
  if (::lchown(path.c_str(), identity.uid, identity.gid) != 0) throw SysError("chown", errno);
}

}  // namespace qilin::sys
