{
  "targets": [
    {
      "target_name": "ember_ga",
      "sources": [
        "native/module.cc",
        "native/errors.cc",
        "native/schedule.cc",
        "native/fileio.cc",
        "native/fdio.cc",
        "native/write_helper.cc",
        "native/md5.cc",
        "native/base64.cc",
        "native/fdpoll.cc",
        "native/dirlist.cc",
        "native/hangup.cc",
        "native/port.cc",
        "native/port_writer.cc",
        "native/port_link.cc",
        "native/malloc.cc",
        "native/event_loop.cc",
        "native/answer_pool.cc",
        "native/freeze.cc",
        "native/sysinfo.cc",
        "native/netlink.cc",
        "native/rtnl.cc",
        "native/rtnl_socket.cc",
        "native/clock.cc",
        "native/passwd.cc",
        "native/spawn.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      # RTTI on: without it, std::make_shared calls a libstdc++ function (_Sp_make_shared_tag::_S_eq,
      # GLIBCXX_3.4.26) where with it the check is inline, so the prebuilds run on GCC 6's libstdc++.
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
