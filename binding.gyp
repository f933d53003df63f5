{
  "variables": {
    "volley_glibc%": "<!(node -p \"process.report.getReport().header.glibcVersionRuntime ? 1 : 0\")",
    # 1 (`npm run build:native`: node-gyp's --volley_testing=1) also builds volley_testing below.
    "volley_testing%": 0
  },
  "targets": [
    {
      "target_name": "volley",
      "sources": [
        "native/engine/deadline_timer.cc",
        "native/engine/engine.cc",
        "native/engine/engine_protocols.cc",
        "native/engine/engine_receive.cc",
        "native/engine/engine_send.cc",
        "native/engine/event_fd.cc",
        "native/engine/reply_source.cc",
        "native/engine/udp_socket.cc",
        "native/napi/binding.cc",
        "native/napi/loop_wake.cc",
        "native/protocol/delivery/delivery_receive.cc",
        "native/protocol/delivery/delivery_send.cc",
        "native/protocol/delivery/reassembly_budget.cc",
        "native/protocol/netcode/aead.cc",
        "native/protocol/netcode/challenge_token.cc",
        "native/protocol/netcode/client.cc",
        "native/protocol/netcode/connect_token.cc",
        "native/protocol/netcode/packet.cc",
        "native/protocol/netcode/server.cc",
        "native/protocol/netcode/server_address.cc",
        "native/sockets/netcode_sockets.cc",
        "native/sockets/network_simulator.cc",
        "native/sockets/protocol_request.cc",
        "native/sockets/socket_protocol.cc",
        "native/util/address.cc"
      ],
      "include_dirs": ["native", "<!(node -p \"require('node-addon-api').include_dir\")"],
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
      # they do in its WebAssembly build (scripts/build-wasm.sh), which has none: the fallback engine's.
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-O2", "-fvisibility=hidden", "-ffp-contract=off"],
      "libraries": ["-l:libsodium.a"],
      "ldflags": ["-Wl,--exclude-libs,ALL", "-pthread"],
      "conditions": [
        # On glibc x64 (the prebuild's platform) the addon needs no newer C library than Node's own binaries
        # (glibc 2.28) and no libstdc++ of the system: native/napi/glibc_baseline.cc says how.
        ["OS=='linux' and target_arch=='x64' and volley_glibc==1", {
          "sources": ["native/napi/glibc_baseline.cc"],
          "ldflags": [
            "-static-libstdc++",
            "-Wl,--wrap=pthread_create,--wrap=pthread_detach,--wrap=pthread_join",
            "-Wl,--wrap=pthread_mutex_trylock,--wrap=pthread_setname_np,--wrap=fstat"
          ]
        }]
      ]
    }
  ],
  "conditions": [
    # The core-level suites' bindings (native/testing/): the protocol cores, the engine's socket protocols, the
    # timer wheel and the network simulator driven call by call. A target of its own that never ships: the install, prebuildify and
    # cmake-js build the addon alone.
    ["volley_testing==1", {
      "targets": [
        {
          "target_name": "volley_testing",
          "sources": [
            "native/protocol/delivery/delivery_receive.cc",
            "native/protocol/delivery/delivery_send.cc",
            "native/protocol/delivery/reassembly_budget.cc",
            "native/protocol/netcode/aead.cc",
            "native/protocol/netcode/challenge_token.cc",
            "native/protocol/netcode/client.cc",
            "native/protocol/netcode/connect_token.cc",
            "native/protocol/netcode/packet.cc",
            "native/protocol/netcode/server.cc",
            "native/protocol/netcode/server_address.cc",
            "native/sockets/netcode_sockets.cc",
            "native/sockets/network_simulator.cc",
            "native/sockets/protocol_request.cc",
            "native/sockets/socket_protocol.cc",
            "native/testing/delivery_binding.cc",
            "native/testing/deterministic_random.cc",
            "native/testing/netcode_binding.cc",
            "native/testing/protocols_binding.cc",
            "native/testing/simulator_binding.cc",
            "native/testing/testing_binding.cc",
            "native/testing/timer_binding.cc",
            "native/util/address.cc"
          ],
          "include_dirs": ["native", "<!(node -p \"require('node-addon-api').include_dir\")"],
          "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
          "cflags!": ["-fno-exceptions"],
          "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
          "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-O2", "-fvisibility=hidden", "-ffp-contract=off"],
          "libraries": ["-l:libsodium.a"],
          "ldflags": ["-Wl,--exclude-libs,ALL", "-pthread"]
        }
      ]
    }]
  ]
}
