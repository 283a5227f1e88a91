//! Models as Keras 3's JSON configs (`config.json` of a `.keras` file, `model_config` of a
//! legacy `.h5`): a Sequential model as its list of layers; a Functional model as its
//! layers, each with the calls that feed it (`inbound_nodes`, whose `keras_history`
//! names the layer, its call and its output), plus `input_layers` and `output_layers`.
//! A model used as a layer is a whole model entry in its parent's list. Layers,
//! optimizers and compile settings are in `config_json`.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::config_json::{
    batch_shape, compile_config, dtype_policy, layer_entry, layer_from_json, short_json, Flavor,
};
use super::{fail, FResult, Fail};
use crate::model::{read, read_layer, share, share_layer, write_layer};
use crate::model::{Input, Member, Model, Node, Src};

/// Models nested deeper than this are refused: a crafted file must not exhaust the stack.
const MAX_DEPTH: usize = 32;

/// The model's entry: `{"class_name": "Sequential" | "Functional", "config": {...}}`, with
/// the `.keras` file's extra keys (and `compile_config`) for `Flavor::Keras3`.
pub fn model_to_json(model: &Model, flavor: Flavor) -> Value {
    let mut entry = model_entry(model, flavor);
    if flavor == Flavor::Keras3 {
        if let Some(c) = &model.compiled {
            entry.insert("compile_config".into(), compile_config(c));
        }
    }
    Value::Object(entry)
}

fn model_entry(model: &Model, flavor: Flavor) -> Map<String, Value> {
    let sequential = model.is_sequential();
    let config = if sequential {
        sequential_config(model, flavor)
    } else {
        functional_config(model, flavor)
    };
    let mut out = Map::new();
    if flavor == Flavor::Keras3 {
        let module = if sequential {
            "keras"
        } else {
            "keras.src.models.functional"
        };
        out.insert("module".into(), json!(module));
    }
    out.insert("class_name".into(), json!(model.class_name()));
    out.insert("config".into(), config);
    if flavor == Flavor::Keras3 {
        let registered = if sequential {
            Value::Null
        } else {
            json!("Functional")
        };
        out.insert("registered_name".into(), registered);
        let input_shape = match model.input_shape() {
            Some(s) if sequential => batch_shape(s),
            _ => Value::Null,
        };
        if !sequential || !input_shape.is_null() {
            out.insert("build_config".into(), json!({ "input_shape": input_shape }));
        }
    }
    out
}

/// The entry of one member: a layer's (built for `build_input`) or a model's.
fn member_entry(m: &Member, build_input: Option<Value>, flavor: Flavor) -> Map<String, Value> {
    match m {
        Member::Layer(c) => {
            let c = read_layer(c);
            layer_entry(&**c, c.trainable, &c.regularizers, build_input, flavor)
        }
        Member::Model(sub) => model_entry(&read(sub), flavor),
    }
}

fn input_layer_entry(name: &str, shape: &[usize], flavor: Flavor) -> Map<String, Value> {
    let mut entry = Map::new();
    if flavor == Flavor::Keras3 {
        entry.insert("module".into(), json!("keras.layers"));
    }
    entry.insert("class_name".into(), json!("InputLayer"));
    entry.insert(
        "config".into(),
        json!({"batch_shape": batch_shape(shape), "dtype": "float32", "sparse": false,
               "ragged": false, "name": name, "optional": false}),
    );
    if flavor == Flavor::Keras3 {
        entry.insert("registered_name".into(), Value::Null);
    }
    entry
}

/// Whether Keras passes this member its inputs as one list (merge layers, models with
/// several inputs) rather than as a single tensor.
fn takes_list(m: &Member, n_inputs: usize) -> bool {
    n_inputs > 1
        || match m {
            Member::Layer(c) => read_layer(c).takes_list(),
            Member::Model(sub) => read(sub).inputs().len() > 1,
        }
}

fn sequential_config(model: &Model, flavor: Flavor) -> Value {
    let mut layers = Vec::new();
    let input = model.input_shape().map(|s| s.to_vec());
    if let Some(s) = &input {
        layers.push(Value::Object(input_layer_entry("input_layer", s, flavor)));
    }
    let shapes = model.known_node_shapes();
    for (k, m) in model.members().iter().enumerate() {
        let build_input = match (&input, &shapes) {
            (Some(s), _) if k == 0 => Some(batch_shape(s)),
            (Some(_), Some(sh)) => sh
                .get(k - 1)
                .and_then(|o| o.first())
                .map(|s| batch_shape(s)),
            _ => None,
        };
        layers.push(Value::Object(member_entry(m, build_input, flavor)));
    }
    let mut config = Map::new();
    config.insert("name".into(), json!(model.name));
    config.insert("trainable".into(), json!(model.trainable));
    config.insert("dtype".into(), dtype_policy());
    config.insert("layers".into(), Value::Array(layers));
    if let Some(s) = &input {
        config.insert("build_input_shape".into(), batch_shape(s));
    }
    Value::Object(config)
}

fn functional_config(model: &Model, flavor: Flavor) -> Value {
    let inputs = model.inputs();
    let members = model.members();
    let nodes = model.nodes();
    let calls = model.call_indices();
    let input_shapes: Vec<Vec<usize>> = inputs
        .iter()
        .map(|i| i.shape.clone().unwrap_or_default())
        .collect();
    let node_shapes = model.known_node_shapes().unwrap_or_default();
    let history = |s: Src| -> Value {
        match s {
            Src::Input(i) => json!([inputs[i].name, 0, 0]),
            Src::Node { node, output } => {
                json!([members[nodes[node].member].name(), calls[node], output])
            }
        }
    };
    let shape_of = |s: Src| -> Option<&[usize]> {
        match s {
            Src::Input(i) => Some(&input_shapes[i]),
            Src::Node { node, output } => node_shapes
                .get(node)
                .and_then(|o| o.get(output))
                .map(Vec::as_slice),
        }
    };
    let tensor = |s: Src| -> Value {
        json!({"class_name": "__keras_tensor__",
               "config": {"shape": shape_of(s).map(batch_shape).unwrap_or(Value::Null),
                          "dtype": "float32", "keras_history": history(s)}})
    };
    let mut layers = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let mut entry = input_layer_entry(&input.name, &input_shapes[i], flavor);
        entry.insert("name".into(), json!(input.name));
        entry.insert("inbound_nodes".into(), json!([]));
        layers.push(Value::Object(entry));
    }
    for (mi, m) in members.iter().enumerate() {
        let mine: Vec<&Node> = nodes.iter().filter(|n| n.member == mi).collect();
        let list = mine.first().is_some_and(|n| takes_list(m, n.inputs.len()));
        let shapes_json = |n: &Node| -> Option<Value> {
            let s: Option<Vec<Value>> = n
                .inputs
                .iter()
                .map(|&s| shape_of(s).map(batch_shape))
                .collect();
            let mut s = s?;
            Some(if list {
                Value::Array(s)
            } else {
                s.swap_remove(0)
            })
        };
        let build_input = mine.first().and_then(|n| shapes_json(n));
        let mut entry = member_entry(m, build_input, flavor);
        let inbound: Vec<Value> = mine
            .iter()
            .map(|n| {
                let ts: Vec<Value> = n.inputs.iter().map(|&s| tensor(s)).collect();
                let arg = if list {
                    Value::Array(ts)
                } else {
                    ts.into_iter().next().unwrap_or(Value::Null)
                };
                // Keras writes the call's keyword arguments; `training` is the one a
                // call can set here.
                let kwargs = match n.training {
                    Some(t) => json!({"training": t}),
                    None => json!({}),
                };
                json!({"args": [arg], "kwargs": kwargs})
            })
            .collect();
        entry.insert("name".into(), json!(m.name()));
        entry.insert("inbound_nodes".into(), Value::Array(inbound));
        layers.push(Value::Object(entry));
    }
    // Keras writes a single input or output as one history, several as a list of them.
    let io = |srcs: Vec<Value>| -> Value {
        if srcs.len() == 1 {
            srcs.into_iter().next().expect("one")
        } else {
            Value::Array(srcs)
        }
    };
    let input_layers = io((0..inputs.len()).map(|i| history(Src::Input(i))).collect());
    let output_layers = io(model.outputs().iter().map(|&s| history(s)).collect());
    json!({"name": model.name, "trainable": model.trainable, "layers": layers,
           "input_layers": input_layers, "output_layers": output_layers})
}

/// `[null, 784]` as the sample shape `[784]`.
pub fn shape_from_json(v: &Value, what: &str) -> FResult<Vec<usize>> {
    let bad = || Fail(format!("{what} is not a shape: {}", short_json(v)));
    let items = v.as_array().ok_or_else(bad)?;
    if items.len() < 2 || items.len() > 8 {
        return Err(bad());
    }
    items[1..]
        .iter()
        .map(|d| {
            d.as_u64()
                .filter(|&d| d >= 1 && d <= (1 << 31))
                .map(|d| d as usize)
                .ok_or_else(bad)
        })
        .collect()
}

/// A model from its config (either flavor; Keras 2's `batch_input_shape` and
/// `inbound_nodes` too).
pub fn model_from_json(v: &Value) -> FResult<Model> {
    model_from_entry(v, 0)
}

fn is_model_class(class: &str) -> bool {
    matches!(class, "Sequential" | "Functional" | "Model")
}

fn model_from_entry(v: &Value, depth: usize) -> FResult<Model> {
    if depth > MAX_DEPTH {
        return fail(format!("nests models more than {MAX_DEPTH} deep"));
    }
    let class = v.get("class_name").and_then(Value::as_str).unwrap_or("");
    let config = v
        .get("config")
        .and_then(Value::as_object)
        .ok_or_else(|| Fail("the model config has no 'config' object".into()))?;
    let mut model = match class {
        "Sequential" => sequential_from_json(v, config, depth)?,
        "Functional" | "Model" => functional_from_json(config, depth)?,
        _ => {
            return fail(format!(
                "holds a '{class}' model; rustkeras reads Sequential and Functional models"
            ))
        }
    };
    // The layers carry their own flags; this is the model's.
    if let Some(t) = config.get("trainable").and_then(Value::as_bool) {
        model.trainable = t;
    }
    Ok(model)
}

/// One entry of a model's `layers`: a layer (with its `trainable` flag) or a model.
fn member_from_json(entry: &Value, index: usize, depth: usize) -> FResult<Member> {
    let class = entry
        .get("class_name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if is_model_class(class) {
        return Ok(Member::Model(share(model_from_entry(entry, depth + 1)?)));
    }
    let parsed = layer_from_json(entry, index)?;
    let cell = share_layer(parsed.layer);
    let trainable = entry
        .get("config")
        .and_then(|c| c.get("trainable"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let mut c = write_layer(&cell);
    c.trainable = trainable;
    c.regularizers = parsed.regularizers;
    drop(c);
    Ok(Member::Layer(cell))
}

fn layers_of<'a>(config: &'a Map<String, Value>) -> FResult<&'a Vec<Value>> {
    config
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| Fail("the model config has no 'layers' list".into()))
}

fn sequential_from_json(v: &Value, config: &Map<String, Value>, depth: usize) -> FResult<Model> {
    let entries = layers_of(config)?;
    let mut input: Option<Vec<usize>> = None;
    let mut members = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let cfg = entry.get("config");
        if entry.get("class_name").and_then(Value::as_str) == Some("InputLayer") {
            let s = cfg
                .and_then(|c| c.get("batch_shape").or_else(|| c.get("batch_input_shape")))
                .ok_or_else(|| Fail("the InputLayer has no batch_shape".into()))?;
            input = Some(shape_from_json(s, "InputLayer's batch_shape")?);
            continue;
        }
        if input.is_none() && members.is_empty() {
            if let Some(s) = cfg.and_then(|c| c.get("batch_input_shape")) {
                input = Some(shape_from_json(s, "batch_input_shape")?);
            }
        }
        members.push(member_from_json(entry, i, depth)?);
    }
    if input.is_none() {
        let built = config
            .get("build_input_shape")
            .or_else(|| v.get("build_config").and_then(|b| b.get("input_shape")));
        if let Some(s) = built.filter(|s| !s.is_null()) {
            input = Some(shape_from_json(s, "build_input_shape")?);
        }
    }
    let name = config
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut model = Model::sequential(name, input)?;
    for m in members {
        model.add_member(m)?;
    }
    Ok(model)
}

/// Where a tensor comes from: `[layer, call, output]`.
#[derive(Clone, Debug)]
struct History {
    layer: String,
    call: usize,
    output: usize,
}

fn history_from_json(v: &Value, what: &str) -> FResult<History> {
    let bad = || {
        Fail(format!(
            "{what} is not a [layer, node, tensor] triple: {}",
            short_json(v)
        ))
    };
    let a = v.as_array().filter(|a| a.len() >= 3).ok_or_else(bad)?;
    let index = |x: &Value| x.as_u64().filter(|&n| n < 1 << 20).map(|n| n as usize);
    Ok(History {
        layer: a[0].as_str().ok_or_else(bad)?.to_string(),
        call: index(&a[1]).ok_or_else(bad)?,
        output: index(&a[2]).ok_or_else(bad)?,
    })
}

/// `input_layers` / `output_layers`: one triple, or a list of them.
fn io_from_json(v: Option<&Value>, what: &str) -> FResult<Vec<History>> {
    let v = v.ok_or_else(|| Fail(format!("the model config has no '{what}'")))?;
    match v.as_array() {
        Some(a) if a.first().is_some_and(Value::is_string) => Ok(vec![history_from_json(v, what)?]),
        Some(a) => a.iter().map(|x| history_from_json(x, what)).collect(),
        None => fail(format!("'{what}' is not a list: {}", short_json(v))),
    }
}

/// One call in a config: the tensors it takes and its `training` argument.
struct Call {
    inputs: Vec<History>,
    training: Option<bool>,
}

/// The `training` argument in a call's keyword arguments: absent or null is `None`
/// (the call follows the mode around it).
fn training_from_kwargs(kw: &Map<String, Value>, what: &str) -> FResult<Option<bool>> {
    match kw.get("training") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => fail(format!(
            "{what} has `training` = {}; rustkeras reads true, false or null",
            short_json(v)
        )),
    }
}

/// The tensors one call takes (`args` of a Keras 3 node, or a Keras 2 node's list) and
/// its `training` argument (Keras 3: the node's `kwargs`; Keras 2: each tensor's).
fn call_from_json(node: &Value, layer: &str) -> FResult<Call> {
    let what = format!("an inbound node of layer '{layer}'");
    if let Some(items) = node.as_array() {
        // Keras 2: [[name, node_index, tensor_index, kwargs], ...]
        let inputs = items
            .iter()
            .map(|x| history_from_json(x, &what))
            .collect::<FResult<Vec<_>>>()?;
        let mut training = None;
        for kw in items
            .iter()
            .filter_map(|x| x.get(3).and_then(Value::as_object))
        {
            training = training.or(training_from_kwargs(kw, &what)?);
        }
        return Ok(Call { inputs, training });
    }
    let unsupported = || {
        Fail(format!(
            "{what} passes something other than tensors, which rustkeras does not support: {}",
            short_json(node)
        ))
    };
    let args = node
        .get("args")
        .and_then(Value::as_array)
        .ok_or_else(unsupported)?;
    let tensor = |t: &Value| -> FResult<History> {
        let cfg = t
            .get("config")
            .filter(|_| t.get("class_name").and_then(Value::as_str) == Some("__keras_tensor__"))
            .ok_or_else(unsupported)?;
        history_from_json(cfg.get("keras_history").unwrap_or(&Value::Null), &what)
    };
    let first = args.first().ok_or_else(unsupported)?;
    let calls = match first.as_array() {
        Some(list) => list.iter().map(tensor).collect::<FResult<Vec<_>>>()?,
        None => vec![tensor(first)?],
    };
    if args.len() > 1 || calls.is_empty() {
        return Err(unsupported());
    }
    // `{"mask": null}` is fine, `{"training": false}` is kept; a tensor here is not.
    let mut training = None;
    if let Some(kw) = node.get("kwargs").and_then(Value::as_object) {
        if kw.values().any(|v| v.get("class_name").is_some()) {
            return Err(unsupported());
        }
        training = training_from_kwargs(kw, &what)?;
    }
    Ok(Call {
        inputs: calls,
        training,
    })
}

fn entry_name(entry: &Value, index: usize) -> FResult<String> {
    entry
        .get("name")
        .or_else(|| entry.get("config").and_then(|c| c.get("name")))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Fail(format!("layer {} of the model has no name", index + 1)))
}

fn functional_from_json(config: &Map<String, Value>, depth: usize) -> FResult<Model> {
    let entries = layers_of(config)?;
    let input_refs = io_from_json(config.get("input_layers"), "input_layers")?;
    let output_refs = io_from_json(config.get("output_layers"), "output_layers")?;
    let mut input_shapes: HashMap<String, Vec<usize>> = HashMap::new();
    let mut members: Vec<Member> = Vec::new();
    let mut member_names: Vec<String> = Vec::new();
    let mut calls: Vec<Vec<Call>> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let name = entry_name(entry, i)?;
        if input_shapes.contains_key(&name) || member_names.contains(&name) {
            return fail(format!("the model config has two layers named '{name}'"));
        }
        let class = entry.get("class_name").and_then(Value::as_str);
        if class == Some("InputLayer") {
            let cfg = entry.get("config");
            let s = cfg
                .and_then(|c| c.get("batch_shape").or_else(|| c.get("batch_input_shape")))
                .ok_or_else(|| Fail(format!("input '{name}' has no batch_shape")))?;
            input_shapes.insert(
                name.clone(),
                shape_from_json(s, "an InputLayer's batch_shape")?,
            );
            continue;
        }
        let nodes = match entry.get("inbound_nodes") {
            Some(Value::Array(nodes)) => nodes
                .iter()
                .map(|n| call_from_json(n, &name))
                .collect::<FResult<Vec<_>>>()?,
            _ => Vec::new(),
        };
        if nodes.is_empty() {
            return fail(format!(
                "layer '{name}' is never called in the model config"
            ));
        }
        members.push(member_from_json(entry, i, depth)?);
        member_names.push(name);
        calls.push(nodes);
    }
    // The model's inputs, in the order `input_layers` gives.
    let mut inputs = Vec::new();
    for r in &input_refs {
        let shape = input_shapes.get(&r.layer).ok_or_else(|| {
            Fail(format!(
                "input '{}' is listed in input_layers but has no InputLayer",
                r.layer
            ))
        })?;
        inputs.push(Input {
            name: r.layer.clone(),
            shape: Some(shape.clone()),
        });
    }
    let output_counts: Vec<usize> = members
        .iter()
        .map(|m| match m {
            Member::Layer(_) => 1,
            Member::Model(sub) => read(sub).outputs().len(),
        })
        .collect();
    // Calls in an order where every tensor exists before it is used: Keras's
    // `functional_from_config` processes nodes the same way, as their inputs appear.
    let mut made: HashMap<(String, usize), usize> = HashMap::new();
    let resolve = |h: &History, made: &HashMap<(String, usize), usize>| -> FResult<Option<Src>> {
        if let Some(i) = inputs.iter().position(|x| x.name == h.layer) {
            if h.call != 0 || h.output != 0 {
                return fail(format!("input '{}' has only one tensor, [0][0]", h.layer));
            }
            return Ok(Some(Src::Input(i)));
        }
        let Some(&node) = made.get(&(h.layer.clone(), h.call)) else {
            return Ok(None);
        };
        let m = member_names
            .iter()
            .position(|n| *n == h.layer)
            .expect("made by a member");
        if h.output >= output_counts[m] {
            return fail(format!(
                "'{}' has {} output(s), but the config reads its output {}",
                h.layer, output_counts[m], h.output
            ));
        }
        Ok(Some(Src::Node {
            node,
            output: h.output,
        }))
    };
    let mut next = vec![0usize; members.len()];
    let mut nodes: Vec<Node> = Vec::new();
    loop {
        let mut progress = false;
        for mi in 0..members.len() {
            while next[mi] < calls[mi].len() {
                let call = &calls[mi][next[mi]];
                let mut srcs = Vec::new();
                for h in &call.inputs {
                    match resolve(h, &made)? {
                        Some(s) => srcs.push(s),
                        None => break,
                    }
                }
                if srcs.len() < call.inputs.len() {
                    break;
                }
                made.insert((member_names[mi].clone(), next[mi]), nodes.len());
                nodes.push(Node {
                    member: mi,
                    inputs: srcs,
                    training: call.training,
                });
                next[mi] += 1;
                progress = true;
            }
        }
        if !progress {
            break;
        }
    }
    for mi in 0..members.len() {
        if let Some(call) = calls[mi].get(next[mi]) {
            let missing = call
                .inputs
                .iter()
                .find(|h| matches!(resolve(h, &made), Ok(None)))
                .map(|h| format!("'{}' [{}][{}]", h.layer, h.call, h.output))
                .unwrap_or_default();
            return fail(format!(
                "layer '{}' takes {missing}, which no layer or input of the model computes",
                member_names[mi]
            ));
        }
    }
    let mut outputs = Vec::new();
    for r in &output_refs {
        match resolve(r, &made)? {
            Some(s) => outputs.push(s),
            None => {
                return fail(format!(
                    "output '{}' [{}][{}] is not computed by the model",
                    r.layer, r.call, r.output
                ))
            }
        }
    }
    let name = config
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Model::functional(name, inputs, members, nodes, outputs)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{registry, ConfigValue};

    #[test]
    fn a_model_config_round_trips() {
        let mut m = Model::sequential(Some("seq".into()), Some(vec![4])).unwrap();
        let c = |pairs: &[(&str, ConfigValue)]| -> Vec<(String, ConfigValue)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect()
        };
        m.add(
            registry::from_config(
                "Dense",
                &c(&[
                    ("units", ConfigValue::Int(3)),
                    ("activation", ConfigValue::Str("relu".into())),
                    ("name", ConfigValue::Str("d".into())),
                ]),
            )
            .unwrap(),
        )
        .unwrap();
        m.add(
            registry::from_config(
                "Dropout",
                &c(&[
                    ("rate", ConfigValue::Float(0.4)),
                    ("name", ConfigValue::Str("dr".into())),
                ]),
            )
            .unwrap(),
        )
        .unwrap();
        for flavor in [Flavor::Legacy, Flavor::Keras3] {
            let j = model_to_json(&m, flavor);
            let d = &j["config"]["layers"][1]["config"];
            assert_eq!(d["kernel_initializer"]["class_name"], "GlorotUniform");
            assert_eq!(d["units"], 3);
            assert_eq!(j["config"]["layers"][2]["config"]["rate"], json!(0.4));
            assert_eq!(
                j["config"]["layers"][0]["config"]["batch_shape"],
                json!([null, 4])
            );
            let back = model_from_json(&j).unwrap();
            assert_eq!(model_to_json(&back, flavor), j);
        }
    }

    #[test]
    fn unknown_classes_and_fields_are_named() {
        let j = json!({"class_name": "Sequential", "config": {"layers": [
            {"class_name": "ConvLSTM2D", "config": {"name": "c"}}]}});
        let e = model_from_json(&j).err().unwrap().0;
        assert!(e.contains("class 'ConvLSTM2D'"), "{e}");
        let j = json!({"class_name": "Sequential", "config": {"layers": [
            {"class_name": "Dense", "config": {"name": "d", "units": 3,
             "kernel_constraint": {"class_name": "MaxNorm", "config": {"max_value": 2}}}}]}});
        let e = model_from_json(&j).err().unwrap().0;
        assert!(e.contains("`kernel_constraint`"), "{e}");
        let j = json!({"class_name": "Sequential", "config": {"layers": [
            {"class_name": "Dense", "config": {"name": "d", "units": 3,
             "activity_regularizer": "l2"}}]}});
        let e = model_from_json(&j).err().unwrap().0;
        assert!(e.contains("activity_regularizer"), "{e}");
    }

    fn layer(class: &str, name: &str, extra: &[(&str, ConfigValue)]) -> Member {
        let mut f = vec![("name".to_string(), ConfigValue::Str(name.into()))];
        f.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        Member::Layer(share_layer(registry::from_config(class, &f).unwrap()))
    }

    /// x -> a -> (shared, shared) -> add, with b frozen, inside a model with two inputs.
    fn graph() -> Model {
        let members = vec![
            layer("Dense", "a", &[("units", ConfigValue::Int(3))]),
            layer("Dense", "shared", &[("units", ConfigValue::Int(3))]),
            layer("Add", "add", &[]),
            layer("Dense", "b", &[("units", ConfigValue::Int(2))]),
        ];
        if let Member::Layer(c) = &members[3] {
            write_layer(c).trainable = false;
        }
        if let Member::Layer(c) = &members[0] {
            let l2 = crate::regularizers::Regularizer::new("L2", 0.0, 0.25).unwrap();
            write_layer(c).regularizers = vec![("kernel", l2)];
        }
        let nodes = vec![
            Node::new(0, vec![Src::Input(0)]),
            Node::new(1, vec![Src::Node { node: 0, output: 0 }]),
            Node::new(1, vec![Src::Input(1)]),
            Node::new(
                2,
                vec![
                    Src::Node { node: 1, output: 0 },
                    Src::Node { node: 2, output: 0 },
                ],
            ),
            Node::new(3, vec![Src::Node { node: 3, output: 0 }]),
        ];
        let inputs = vec![
            Input {
                name: "x".into(),
                shape: Some(vec![4]),
            },
            Input {
                name: "y".into(),
                shape: Some(vec![3]),
            },
        ];
        let outputs = vec![
            Src::Node { node: 4, output: 0 },
            Src::Node { node: 3, output: 0 },
        ];
        Model::functional(Some("g".into()), inputs, members, nodes, outputs).unwrap()
    }

    #[test]
    fn a_functional_config_round_trips_as_keras_writes_it() {
        let m = graph();
        for flavor in [Flavor::Legacy, Flavor::Keras3] {
            let j = model_to_json(&m, flavor);
            let c = &j["config"];
            assert_eq!(j["class_name"], "Functional");
            assert_eq!(c["input_layers"], json!([["x", 0, 0], ["y", 0, 0]]));
            assert_eq!(c["output_layers"], json!([["b", 0, 0], ["add", 0, 0]]));
            let shared = &c["layers"][3];
            assert_eq!(shared["name"], "shared");
            let second = &shared["inbound_nodes"][1]["args"][0]["config"];
            assert_eq!(second["keras_history"], json!(["y", 0, 0]));
            assert_eq!(second["shape"], json!([null, 3]));
            let add = &c["layers"][4]["inbound_nodes"][0]["args"][0];
            assert_eq!(add[1]["config"]["keras_history"], json!(["shared", 1, 0]));
            assert_eq!(c["layers"][5]["config"]["trainable"], json!(false));
            assert_eq!(
                c["layers"][2]["config"]["kernel_regularizer"]["config"],
                json!({"l2": 0.25})
            );
            let back = model_from_json(&j).unwrap();
            assert_eq!(model_to_json(&back, flavor), j);
            assert_eq!(back.nodes().len(), 5);
            assert_eq!(back.outputs(), m.outputs());
        }
    }

    #[test]
    fn a_model_inside_a_model_round_trips() {
        let inner = share(graph());
        let members = vec![
            Member::Model(inner),
            layer("Dense", "head", &[("units", ConfigValue::Int(1))]),
        ];
        let mut nodes = vec![
            Node::new(0, vec![Src::Input(0), Src::Input(1)]),
            Node::new(1, vec![Src::Node { node: 0, output: 1 }]),
        ];
        // `inner(p, q, training = FALSE)`, as keras3's transfer-learning guide calls its
        // base model.
        nodes[0].training = Some(false);
        let inputs = vec![
            Input {
                name: "p".into(),
                shape: Some(vec![4]),
            },
            Input {
                name: "q".into(),
                shape: Some(vec![3]),
            },
        ];
        let outer = Model::functional(
            Some("outer".into()),
            inputs,
            members,
            nodes,
            vec![Src::Node { node: 1, output: 0 }],
        )
        .unwrap();
        let j = model_to_json(&outer, Flavor::Keras3);
        assert_eq!(j["config"]["layers"][2]["class_name"], "Functional");
        assert_eq!(
            j["config"]["layers"][3]["inbound_nodes"][0]["args"][0]["config"]["keras_history"],
            json!(["g", 0, 1])
        );
        assert_eq!(
            j["config"]["layers"][2]["inbound_nodes"][0]["kwargs"],
            json!({"training": false})
        );
        assert_eq!(
            j["config"]["layers"][3]["inbound_nodes"][0]["kwargs"],
            json!({})
        );
        let back = model_from_json(&j).unwrap();
        assert!(back.has_nested_models());
        assert_eq!(back.nodes()[0].training, Some(false));
        assert_eq!(back.nodes()[1].training, None);
        assert_eq!(model_to_json(&back, Flavor::Keras3), j);
    }

    #[test]
    fn a_calls_training_argument_is_read_in_both_formats() {
        let mut j = model_to_json(&graph(), Flavor::Keras3);
        fn node(j: &mut Value) -> &mut Value {
            &mut j["config"]["layers"][5]["inbound_nodes"][0]
        }
        node(&mut j)["kwargs"] = json!({"training": true, "mask": null});
        assert_eq!(model_from_json(&j).unwrap().nodes()[4].training, Some(true));
        node(&mut j)["kwargs"] = json!({"training": null});
        assert_eq!(model_from_json(&j).unwrap().nodes()[4].training, None);
        node(&mut j)["kwargs"] = json!({"training": 1});
        let e = model_from_json(&j).err().expect("refused").0;
        assert!(
            e.contains("layer 'b'") && e.contains("`training` = 1"),
            "{e}"
        );
        // Keras 2: [[layer, node, tensor, kwargs], ...]
        *node(&mut j) = json!([["add", 0, 0, {"training": false}]]);
        assert_eq!(
            model_from_json(&j).unwrap().nodes()[4].training,
            Some(false)
        );
    }

    #[test]
    fn broken_graphs_are_named() {
        let j = model_to_json(&graph(), Flavor::Keras3);
        let err = |edit: &dyn Fn(&mut Value)| {
            let mut v = j.clone();
            edit(&mut v);
            model_from_json(&v).err().expect("refused").0
        };
        let e = err(&|v| {
            v["config"]["layers"][3]["inbound_nodes"][0]["args"][0]["config"]["keras_history"] =
                json!(["nowhere", 0, 0])
        });
        assert!(e.contains("layer 'shared' takes 'nowhere' [0][0]"), "{e}");
        let e = err(&|v| v["config"]["output_layers"] = json!([["add", 3, 0]]));
        assert!(e.contains("output 'add' [3][0]"), "{e}");
        let e = err(&|v| v["config"]["output_layers"] = json!(["add", 0, 2]));
        assert!(e.contains("'add' has 1 output(s)"), "{e}");
        let e = err(&|v| v["config"]["layers"][4]["inbound_nodes"] = json!([]));
        assert!(e.contains("layer 'add' is never called"), "{e}");
        let e = err(&|v| v["config"]["layers"][4]["name"] = json!("a"));
        assert!(e.contains("two layers named 'a'"), "{e}");
        let e = err(&|v| v["config"]["input_layers"] = json!([["z", 0, 0]]));
        assert!(e.contains("input 'z'"), "{e}");
        // A layer that feeds itself can never run.
        let e = err(&|v| {
            v["config"]["layers"][2]["inbound_nodes"][0]["args"][0]["config"]["keras_history"] =
                json!(["a", 0, 0])
        });
        assert!(e.contains("layer 'a' takes 'a' [0][0]"), "{e}");
        let mut deep = json!({"class_name": "Dense", "config": {"name": "d", "units": 1}});
        for _ in 0..40 {
            deep = json!({"class_name": "Sequential", "config": {"layers": [deep]}});
        }
        assert!(model_from_json(&deep)
            .err()
            .unwrap()
            .0
            .contains("more than 32 deep"));
    }
}
