//! Keras 3's `.keras` file (keras/src/saving/saving_lib.py): a zip of `metadata.json`,
//! `config.json` (the model's config with `compile_config`) and `model.weights.h5`, whose
//! weights sit by object path: `layers/<layer>/vars/0, 1, ...`, `optimizer/vars/0, 1, ...`
//! (0 = iteration, 1 = learning_rate, then the slots), `vars` for the model itself.

use std::io::{Read, Write};
use std::path::Path;

use hdf5::Group;
use serde_json::{json, Value};

use super::config_json::{self, Flavor};
use super::model_config;
use super::weights::{assign, keras_paths, layer_weights, Saveable};
use super::{at_path, check_target, fail, h5, optimizer_state, readable_file, FResult, Fail};
use super::{TempTarget, KERAS_VERSION};
use crate::model::{self, read_layer, Model};

const WEIGHTS: &str = "model.weights.h5";
/// Largest JSON entry read (configs of huge models stay far below).
const MAX_JSON: u64 = 64 << 20;

pub fn save_keras(model: &Model, path: &Path, overwrite: bool) -> crate::Result<()> {
    at_path(path, write(model, path, overwrite))
}

fn write(model: &Model, path: &Path, overwrite: bool) -> FResult<()> {
    check_target(path, overwrite)?;
    // HDF5 builds the weights in a named file of their own (`.{stem}.weights.h5.tmp-*`,
    // as earlier versions named it, so the next save removes one left by a killed save),
    // read back into the zip, which is written to an unnamed file where the system allows.
    let weights_tmp = TempTarget::named(&path.with_extension("weights.h5"))?;
    write_weights(model, weights_tmp.path()).map_err(|f| weights_tmp.scrub(f))?;
    let weights = read_all(weights_tmp.file()?)?;
    drop(weights_tmp);
    let config = model_config::model_to_json(model, Flavor::Keras3);
    let metadata = json!({"keras_version": KERAS_VERSION, "date_saved": date_saved(),
                          "rustkeras_version": crate::VERSION});
    let tmp = TempTarget::create(path)?;
    let out = tmp.file()?;
    let zipped = (|| -> zip::result::ZipResult<()> {
        let mut zip = zip::ZipWriter::new(out);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, bytes) in [
            ("metadata.json", metadata.to_string().into_bytes()),
            ("config.json", config.to_string().into_bytes()),
            (WEIGHTS, weights),
        ] {
            zip.start_file(name, opts)?;
            zip.write_all(&bytes)?;
        }
        zip.finish()?;
        Ok(())
    })();
    // Not `From<ZipError>`: that one speaks of reading a file that is not a zip.
    zipped.map_err(|e| match e {
        zip::result::ZipError::Io(e) => {
            tmp.scrub(Fail(format!("cannot be written: {}", super::os_reason(&e))))
        }
        e => Fail(format!("cannot be written ({e})")),
    })?;
    tmp.keep()
}

/// The whole content of a file from its start.
fn read_all(mut file: std::fs::File) -> FResult<Vec<u8>> {
    use std::io::Seek;
    file.seek(std::io::SeekFrom::Start(0))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    Ok(buf)
}

/// `YYYY-MM-DD@HH:MM:SS` in UTC, as Keras writes it.
fn date_saved() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}@{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Keras's `naming.to_snake_case`: `Dense` -> `dense`, `MaxPooling2D` -> `max_pooling2d`.
pub fn keras_snake_case(name: &str) -> String {
    let c: Vec<char> = name
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    // re.sub("(.)([A-Z][a-z]+)", r"\1_\2"): matches do not overlap.
    let mut a = String::new();
    let mut i = 0;
    while i < c.len() {
        if i + 2 < c.len() + 1
            && i + 1 < c.len()
            && c[i + 1].is_ascii_uppercase()
            && c.get(i + 2).is_some_and(|x| x.is_ascii_lowercase())
        {
            a.push(c[i]);
            a.push('_');
            let mut j = i + 1;
            a.push(c[j]);
            j += 1;
            while j < c.len() && c[j].is_ascii_lowercase() {
                a.push(c[j]);
                j += 1;
            }
            i = j;
        } else {
            a.push(c[i]);
            i += 1;
        }
    }
    // re.sub("([a-z])([A-Z])", r"\1_\2")
    let a: Vec<char> = a.chars().collect();
    let mut out = String::new();
    for (k, ch) in a.iter().enumerate() {
        if k > 0 && ch.is_ascii_uppercase() && a[k - 1].is_ascii_lowercase() {
            out.push('_');
        }
        out.push(*ch);
    }
    out.to_lowercase()
}

fn write_weights(model: &Model, path: &Path) -> FResult<()> {
    let file = h5::create(path)?;
    file.create_group("layers")?;
    for (path, item) in keras_paths(model) {
        let group = h5::ensure_groups(&file, &path)?;
        let vars = group.create_group("vars")?;
        match item {
            Saveable::Input(name) => h5::write_str_attr(&vars, "name", &name)?,
            Saveable::Model(sub) => {
                let name = model::read(&sub).name.clone();
                h5::write_str_attr(&vars, "name", &name)?
            }
            Saveable::Layer(cell) => {
                let groups = read_layer(&cell).keras_var_groups();
                let weights = layer_weights(&cell);
                for g in groups {
                    let vars = if g.sub.is_empty() {
                        vars.clone()
                    } else {
                        h5::ensure_groups(&group, &g.sub)?.create_group("vars")?
                    };
                    h5::write_str_attr(&vars, "name", &g.name)?;
                    for (i, w) in weights[g.weights].iter().enumerate() {
                        h5::write_f32(&vars, &i.to_string(), &w.shape(), &w.values())?;
                    }
                }
            }
        }
    }
    if let Some(state) = optimizer_state::export(model) {
        let vars = file.create_group("optimizer")?.create_group("vars")?;
        h5::write_str_attr(&vars, "name", state.object_name)?;
        h5::write_i64_scalar(&vars, "0", state.iterations as i64)?;
        h5::write_f32_scalar(&vars, "1", state.learning_rate)?;
        for (i, s) in state.slots.iter().enumerate() {
            h5::write_f32(&vars, &(i + 2).to_string(), &s.shape, &s.values)?;
        }
    }
    let vars = file.create_group("vars")?;
    h5::write_str_attr(&vars, "name", &model.name)?;
    file.close()?;
    Ok(())
}

pub fn load_keras(path: &Path, compile: bool) -> crate::Result<Model> {
    // The file's weights replace the initial ones: a load takes no seeds from the host.
    crate::rng::without_host_seeds(|| at_path(path, read(path, compile)))
}

/// Puts the weights of a `.keras` file into `model` (built, with the saved model's
/// layers), as Keras's `model.load_weights("x.keras")` does.
pub fn load_weights_keras(model: &mut Model, path: &Path) -> crate::Result<()> {
    at_path(path, read_weights_into(model, path))
}

fn read_weights_into(model: &mut Model, path: &Path) -> FResult<()> {
    let len = readable_file(path)?;
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path)?)?;
    let w = open_weights(&mut zip, len)?;
    read_layer_weights(model, &w.file, w.budget)
}

/// The zip's `model.weights.h5`, copied out to a temporary file HDF5 can open.
struct ZipWeights {
    file: hdf5::File,
    /// Bytes of the weights file: no dataset in it can be larger.
    budget: u64,
    /// Removes the copy when dropped (after `file`, declared above it).
    _tmp: TempTarget,
}

fn open_weights<R: Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    zip_len: u64,
) -> FResult<ZipWeights> {
    // Stored entries are never larger than the zip; deflated ones at most ~1032 times.
    let weights = entry_bytes(zip, WEIGHTS, zip_len.saturating_mul(1032))?;
    let tmp_dir = std::env::temp_dir();
    let tmp =
        TempTarget::named(&tmp_dir.join("rustkeras-load.weights.h5")).map_err(|Fail(m)| {
            Fail(format!(
                "cannot be read: its weights need a temporary copy in '{}', which {m}",
                tmp_dir.display()
            ))
        })?;
    tmp.file()?.write_all(&weights)?;
    let budget = weights.len() as u64;
    drop(weights);
    let file = h5::open(tmp.path(), "model.weights.h5")
        .map_err(|Fail(m)| Fail(format!("'{WEIGHTS}' in the zip {m}")))?;
    Ok(ZipWeights {
        file,
        budget,
        _tmp: tmp,
    })
}

fn entry_bytes<R: Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
    limit: u64,
) -> FResult<Vec<u8>> {
    let mut entry = zip
        .by_name(name)
        .map_err(|_| Fail(format!("is not a Keras model: the zip has no '{name}'")))?;
    if entry.size() > limit {
        return fail(format!(
            "'{name}' claims {} bytes, more than this file can hold",
            entry.size()
        ));
    }
    let mut buf = Vec::with_capacity(entry.size() as usize);
    (&mut entry)
        .take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Fail(format!("'{name}' in the zip is corrupted ({e})")))?;
    if buf.len() as u64 > limit {
        return fail(format!("'{name}' is larger than this file can hold"));
    }
    Ok(buf)
}

fn read(path: &Path, compile: bool) -> FResult<Model> {
    let len = readable_file(path)?;
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path)?)?;
    let config_bytes = entry_bytes(&mut zip, "config.json", MAX_JSON.min(len))?;
    let config: Value = serde_json::from_slice(&config_bytes)
        .map_err(|e| Fail(format!("'config.json' is not valid JSON ({e})")))?;
    let mut model = model_config::model_from_json(&config)?;
    let weights = open_weights(&mut zip, len)?;
    let (file, budget) = (&weights.file, weights.budget);
    if !model.is_built() && model.layers().iter().any(|l| !l.is_built()) {
        return fail(
            "the saved model was never built (no input shape), so its weights cannot be placed",
        );
    }
    read_layer_weights(&model, file, budget)?;
    if compile {
        if let Some(cc) = config
            .get("compile_config")
            .filter(|c| c.as_object().is_some_and(|m| !m.is_empty()))
        {
            let mut settings = config_json::compile_from_json(cc, &model.output_names())?;
            // Keras 3.15 leaves the optimizer out of `compile_config`; the weights file
            // still names it. Its settings are then Keras's defaults, and a saved state
            // that does not fit them is dropped, as Keras does.
            let named = cc.get("optimizer").is_some_and(|o| !o.is_null());
            let vars = file.group("optimizer/vars").ok();
            if !named {
                if let Some(cfg) = vars
                    .as_ref()
                    .and_then(|v| h5::read_str_attr(v, "name").ok())
                    .and_then(|n| optimizer_from_object_name(&n))
                {
                    settings.optimizer = cfg;
                }
            }
            settings.apply(&mut model)?;
            if let Some(vars) = vars {
                if let Err(e) = read_optimizer(&mut model, &vars, budget) {
                    if named {
                        return Err(e);
                    }
                    settings.apply(&mut model)?;
                }
            }
        }
    }
    Ok(model)
}

/// An optimizer with Keras's defaults from the name Keras gave its object (`adam`,
/// `rm_sprop`, `adam_w_1`, ...).
fn optimizer_from_object_name(name: &str) -> Option<crate::optim::OptimizerConfig> {
    let base = match name.rsplit_once('_') {
        Some((b, n)) if n.chars().all(|c| c.is_ascii_digit()) => b,
        _ => name,
    };
    let engine_name = match base {
        "adam" => "adam",
        "adam_w" | "adamw" => "adamw",
        "rm_sprop" | "rmsprop" => "rmsprop",
        "sgd" => "sgd",
        _ => return None,
    };
    crate::optim::OptimizerConfig::from_name(engine_name).ok()
}

/// The datasets `0`, `1`, ... of a `vars` group, in order.
fn numbered(vars: &Group, budget: u64) -> FResult<Vec<(Vec<usize>, Vec<f32>)>> {
    let n = vars.member_names()?.len();
    (0..n)
        .map(|i| {
            let ds = vars
                .dataset(&i.to_string())
                .map_err(|_| Fail(format!("variable {i} of '{}' is missing", vars.name())))?;
            h5::read_f32(&ds, budget)
        })
        .collect()
}

/// Reads every layer's variables from its object path, checks them all, then assigns.
pub(super) fn read_layer_weights(model: &Model, file: &hdf5::File, budget: u64) -> FResult<()> {
    let mut updates = Vec::new();
    for (path, item) in keras_paths(model) {
        let Saveable::Layer(cell) = item else {
            continue;
        };
        let weights = layer_weights(&cell);
        let (layer, groups) = {
            let l = read_layer(&cell);
            (l.name().to_string(), l.keras_var_groups())
        };
        for g in groups.into_iter().filter(|g| !g.weights.is_empty()) {
            let at = if g.sub.is_empty() {
                path.clone()
            } else {
                format!("{path}/{}", g.sub)
            };
            let vars = file.group(&format!("{at}/vars")).map_err(|_| {
                Fail(format!(
                    "the weights file has no '{at}' group for layer '{layer}'"
                ))
            })?;
            let saved = numbered(&vars, budget)?;
            let want = &weights[g.weights];
            if saved.len() != want.len() {
                return fail(format!(
                    "layer '{layer}' has {} weights in '{at}', but the file holds {}",
                    want.len(),
                    saved.len()
                ));
            }
            for (i, (w, (shape, v))) in want.iter().zip(saved).enumerate() {
                let value = w.check(&format!("{at}/vars/{i}"), shape, v)?;
                updates.push((w.clone(), value));
            }
        }
    }
    assign(updates);
    Ok(())
}

fn read_optimizer(model: &mut Model, vars: &Group, budget: u64) -> FResult<()> {
    let n = vars.member_names()?.len();
    if n < 2 {
        return fail(
            "the saved optimizer has fewer than its 2 base variables (iteration, learning_rate)",
        );
    }
    let ds = |i: usize| {
        vars.dataset(&i.to_string())
            .map_err(|_| Fail(format!("optimizer variable {i} is missing")))
    };
    let iterations = h5::read_count(&ds(0)?)?;
    let (_, lr) = h5::read_f32(&ds(1)?, budget)?;
    if lr.len() != 1 {
        return fail("the optimizer's learning_rate is not a scalar");
    }
    let mut slots = Vec::new();
    for i in 2..n {
        slots.push(h5::read_f32(&ds(i)?, budget)?);
    }
    optimizer_state::import(model, iterations, Some(lr[0]), slots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_matches_keras() {
        for (c, s) in [
            ("Dense", "dense"),
            ("Conv2D", "conv2d"),
            ("MaxPooling2D", "max_pooling2d"),
            ("BatchNormalization", "batch_normalization"),
            ("GlobalAveragePooling2D", "global_average_pooling2d"),
            ("ZeroPadding2D", "zero_padding2d"),
            ("InputLayer", "input_layer"),
        ] {
            assert_eq!(keras_snake_case(c), s);
        }
    }
}
