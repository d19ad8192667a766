//! Any bytes given to the initrd reader end in a tree or a typed error, never a panic.
//! Run on a machine with nightly: `cargo +nightly fuzz run read_image -- -max_len=65536`.
#![no_main]

use std::path::Path;

use bootrig::initrd::image::{read_tree_from, ReadOptions};
use bootrig::initrd::tree::DataPolicy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A small cap keeps decompression bombs from stalling the fuzzer.
    let opts = ReadOptions { max_output: 64 << 20 };
    let _ = read_tree_from(data, Path::new("fuzz-input"), DataPolicy::Full, &opts);
});
