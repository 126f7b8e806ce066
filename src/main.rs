//! The `medlink` command line: parse arguments, set up logging, dispatch.

fn main() -> std::process::ExitCode {
    medlink::parallel::single_threaded_candle();
    medlink::cli::main()
}
