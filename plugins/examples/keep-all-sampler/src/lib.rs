//! A `tail_sampling` policy of type `plugin` that samples every trace. It takes any config and
//! ignores it, so it can replace another sampler's file under the same policy settings: the
//! tests swap it in for `error-latency-sampler` to see decisions change without a restart.

wit_bindgen::generate!({
    path: "../../../wit/sampler",
    world: "sampler",
});

struct Plugin;

impl Guest for Plugin {
    fn init(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn decide(_trace: Vec<u8>) -> Decision {
        Decision::Sampled
    }
}

export!(Plugin);
