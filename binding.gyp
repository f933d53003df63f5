{
  "variables": {
    "volley_glibc%": "<!(node -p \"process.report.getReport().header.glibcVersionRuntime ? 1 : 0\")"
  },
  "targets": [
    {
      "target_name": "volley",
      "sources": [
        "native/address.cc",
        "native/binding.cc",
        "native/delivery/delivery_receive.cc",
        "native/delivery/delivery_send.cc",
        "native/delivery/reassembly_budget.cc",
        "native/deadline_timer.cc",
        "native/delivery_binding.cc",
        "native/engine.cc",
        "native/engine_protocols.cc",
        "native/engine_receive.cc",
        "native/engine_send.cc",
        "native/event_fd.cc",
        "native/loop_wake.cc",
        "native/netcode/aead.cc",
        "native/netcode/challenge_token.cc",
        "native/netcode/client.cc",
        "native/netcode/connect_token.cc",
        "native/netcode/packet.cc",
        "native/netcode/server.cc",
        "native/netcode/server_address.cc",
        "native/netcode_binding.cc",
        "native/netcode_sockets.cc",
        "native/network_simulator.cc",
        "native/reply_source.cc",
        "native/socket_protocol.cc",
        "native/simulator_binding.cc",
        "native/timer_binding.cc",
        "native/udp_socket.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_DISABLE_CPP_EXCEPTIONS",
        # A call made while a Worker terminates fails: without this node-addon-api aborts the process on it.
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "VOLLEY_SOURCE_HASH=\"<!(node scripts/source-hash.mjs)\""
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      # -ffp-contract=off: no fused multiply-adds (arm64), so that the delivery layer's doubles round as
      # its TypeScript twin's do (src/protocol/delivery/, checked against this one value for value).
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-O2", "-fvisibility=hidden", "-ffp-contract=off"],
      "libraries": ["-l:libsodium.a"],
      "ldflags": ["-Wl,--exclude-libs,ALL", "-pthread"],
      "conditions": [
        # On glibc x64 (the prebuild's platform) the addon needs no newer C library than Node's own binaries
        # (glibc 2.28) and no libstdc++ of the system: native/glibc_baseline.cc says how.
        ["OS=='linux' and target_arch=='x64' and volley_glibc==1", {
          "sources": ["native/glibc_baseline.cc"],
          "ldflags": [
            "-static-libstdc++",
            "-Wl,--wrap=pthread_create,--wrap=pthread_detach,--wrap=pthread_join",
            "-Wl,--wrap=pthread_mutex_trylock,--wrap=pthread_setname_np,--wrap=fstat"
          ]
        }]
      ]
    }
  ]
}
