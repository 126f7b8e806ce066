//! The `medlink` command line: parse arguments, set up logging, dispatch.

/// mimalloc keeps freed memory for reuse: with glibc's allocator every multi-megabyte tensor
/// of a training step or an encoder batch was mapped, zeroed by the kernel and unmapped again
/// (a fifth of a training step went to page faults and TLB shootdowns).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    medlink::parallel::single_threaded_candle();
    medlink::cli::main()
}
