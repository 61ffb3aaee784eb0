//! A component for another contract: its `init` takes a list of pairs (as the prototype's
//! sketch did) and it exports no `process-*`. trailhead must refuse it at load.

wit_bindgen::generate!({
    inline: "
        package other:processor@0.1.0;
        world processor {
            export init: func(config: list<tuple<string, string>>) -> result<string, string>;
        }
    ",
});

struct WrongWit;

impl Guest for WrongWit {
    fn init(_config: Vec<(String, String)>) -> Result<String, String> {
        Ok("wrong".into())
    }
}

export!(WrongWit);
