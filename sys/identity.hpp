// Who the worker processes run as (gunicorn's `user` and `group`, nginx's
// `user`). The master keeps the identity it was started with, root when it
// must bind port 80 or re-bind on a reload; every process that touches
// client bytes or app code (the workers, the status process) gives root up
// right after fork, before the app is loaded.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace qilin::sys {

struct Identity {
  uid_t uid = 0;
  gid_t gid = 0;
  // The account's name, for its supplementary groups (initgroups); empty
  // when the uid has no passwd entry: then the group is the only one.
  std::string user;
};

// An account of the passwd database, by name or number. A number with no
// entry is taken as it is (containers often run as a uid nobody named), but
// then there is no primary group to default to. nullopt: an unknown name.
struct Account {
  uid_t uid = 0;
  std::optional<gid_t> primary_group;
  std::string name;
};
std::optional<Account> find_user(std::string_view name_or_uid);
// A group by name or number; a number is taken as it is.
std::optional<gid_t> find_group(std::string_view name_or_gid);

// Whether this process may become `identity`: it already is, or it is root.
bool can_become(const Identity& identity) noexcept;

// setgroups/initgroups, setgid, setuid, in that order (each later call needs
// the privilege the earlier ones keep), then a check that root cannot be
// regained. Throws SysError. A no-op when the process already is `identity`.
void become(const Identity& identity);

// The files the workers must be able to reopen or own (log files after
// USR1, a Unix socket's path) are handed to `identity` when this process is
// root. Only regular files and sockets: "/dev/null" as a log stays root's.
void hand_over(const std::string& path, const Identity& identity);

}  // namespace qilin::sys
