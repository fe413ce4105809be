//! `metadata.managedFields`: who owns which fields, per manager, operation
//! (Apply or Update) and subresource. Updates (create, PUT, merge and JSON
//! patches) give their manager the fields they changed and take those fields
//! from everyone else; an Apply owns exactly the fields of its configuration,
//! conflicts with other owners of fields it would change (unless forced), and
//! removes fields it applied before and no longer does, when nobody else owns
//! them.

use super::fields::{self, Element, FieldSet, Path};
use super::merge;
use super::schema::Schema;
use serde_json::{Map, Value};

/// One `managedFields` entry.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The manager's name (`fieldManager`).
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The API version the fields were set through.
    pub api_version: String,
    /// When the manager last changed its fields.
    pub time: String,
    /// `status` for writes to that subresource.
    pub subresource: Option<String>,
    /// What it owns (empty while `unread`).
    pub fields: FieldSet,
    /// Whether `fields` is still to be read from `read_as`: an entry of
    /// another subresource, which an apply rarely needs ([`Managed::read_for`]).
    pub unread: bool,
    /// The entry as it was read, while nothing in it has changed since
    /// (written back as it is, not rendered again).
    pub read_as: Option<Value>,
}

impl Entry {
    /// The entry's `managedFields` item, with `fields_v1` as its fields.
    fn render(&self, fields_v1: Value) -> Value {
        let text = |s: &str| Value::String(s.to_string());
        let mut m = Map::new();
        if !self.api_version.is_empty() {
            m.insert("apiVersion".into(), text(&self.api_version));
        }
        m.insert("fieldsType".into(), text("FieldsV1"));
        m.insert("fieldsV1".into(), fields_v1);
        m.insert("manager".into(), text(&self.manager));
        m.insert("operation".into(), text(&self.operation));
        if let Some(s) = &self.subresource {
            m.insert("subresource".into(), text(s));
        }
        if !self.time.is_empty() {
            m.insert("time".into(), text(&self.time));
        }
        Value::Object(m)
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.api_version == other.api_version
            && self.time == other.time
            && self.subresource == other.subresource
            && self.fields == other.fields
    }
}

/// Every entry of an object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Managed(pub Vec<Entry>);

/// A field another manager owns that an apply would change.
#[derive(Clone, Debug, PartialEq)]
pub struct Conflict {
    /// The other manager.
    pub manager: String,
    /// The API version it used.
    pub api_version: String,
    /// The field's path.
    pub path: Path,
}

impl Conflict {
    /// The field, as Kubernetes prints it (`.spec.command`).
    pub fn field(&self) -> String {
        fields::display(&self.path)
    }
}

/// What an apply configuration owns: its owned part, that part's field set
/// and, when it could be built in one pass, the set's `fieldsV1` form.
pub struct Applied {
    /// The configuration's [`owned_part`].
    pub config: Value,
    /// Its fields.
    pub set: FieldSet,
    /// Their `fieldsV1`.
    pub fields_v1: Option<Value>,
}

impl Applied {
    /// What `config` (an [`owned_part`]) owns.
    pub fn of(config: Value, schema: Schema<'_>) -> Applied {
        Applied {
            set: fields::set_of(&config, schema),
            fields_v1: super::update::tree_of(&config, schema).map(Value::Object),
            config,
        }
    }
}

/// The fields that count for ownership: not the type, not the object's identity
/// and bookkeeping, and, when status is a subresource, only status (for writes
/// to it) or everything else (for the rest).
pub fn owned_part(obj: &Value, subresource: Option<&str>, status_subresource: bool) -> Value {
    let Some(o) = obj.as_object() else {
        return Value::Null;
    };
    if subresource == Some("status") {
        return status_only(o);
    }
    // Only what is kept is copied (an object's managedFields, say, never are).
    let skip: &[&str] = if status_subresource {
        &["apiVersion", "kind", "metadata", "status"]
    } else {
        &["apiVersion", "kind", "metadata"]
    };
    let mut out = copy_except(o, skip);
    match o.get("metadata") {
        Some(Value::Object(m)) => {
            let kept = copy_except(m, &super::update::IGNORED_METADATA);
            if !kept.is_empty() {
                out.insert("metadata".into(), Value::Object(kept));
            }
        }
        Some(other) => {
            out.insert("metadata".into(), other.clone());
        }
        None => {}
    }
    Value::Object(out)
}

/// `{"status": ...}` with the status of `o` (`null` when it has none). Built,
/// not through `json!`, which would copy the status twice.
pub fn status_only(o: &Map<String, Value>) -> Value {
    let status = o.get("status").cloned().unwrap_or(Value::Null);
    Value::Object(Map::from_iter([("status".to_string(), status)]))
}

/// A copy of `obj` without `metadata.managedFields`.
fn without_managed_fields(obj: &Value) -> Value {
    let Some(o) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = copy_except(o, &["metadata"]);
    if let Some(m) = o.get("metadata") {
        let m = match m.as_object() {
            Some(m) => Value::Object(copy_except(m, &["managedFields"])),
            None => m.clone(),
        };
        out.insert("metadata".into(), m);
    }
    Value::Object(out)
}

/// A copy of the object `m` without the fields in `skip` (not copied at all).
pub fn copy_except(m: &Map<String, Value>, skip: &[&str]) -> Map<String, Value> {
    m.iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Whether the field at `p` differs between `a` and `b`: for a list item
/// (map-list key or set value), whether it exists in one only; for a leaf, its value.
fn differs(a: &Value, b: &Value, p: &Path, schema: Schema<'_>) -> bool {
    let (x, y) = (fields::get(a, p, schema), fields::get(b, p, schema));
    match p.last() {
        Some(Element::Key(_) | Element::Value(_)) => x.is_some() != y.is_some(),
        _ => x != y,
    }
}

impl Managed {
    /// Reads `metadata.managedFields`; a message naming the problem when malformed.
    pub fn read(obj: &Value) -> Result<Managed, String> {
        Managed::read_some(obj, |_| true)
    }

    /// Reads `metadata.managedFields`, the field sets of the entries of
    /// `subresource` only; the others are read when needed ([`Managed::read_rest`]).
    pub fn read_for(obj: &Value, subresource: Option<&str>) -> Result<Managed, String> {
        Managed::read_some(obj, |s| s == subresource)
    }

    fn read_some(obj: &Value, wanted: impl Fn(Option<&str>) -> bool) -> Result<Managed, String> {
        let Some(list) = obj["metadata"].get("managedFields") else {
            return Ok(Managed::default());
        };
        let Some(list) = list.as_array() else {
            return Err("metadata.managedFields must be a list".into());
        };
        let mut out = Vec::new();
        for (i, e) in list.iter().enumerate() {
            let s = |k: &str| e[k].as_str().map(str::to_string);
            let at = format!("metadata.managedFields[{i}]");
            let manager = s("manager").unwrap_or_default();
            let operation = s("operation").unwrap_or_default();
            if !matches!(operation.as_str(), "Apply" | "Update") {
                return Err(format!("{at}.operation: must be Apply or Update"));
            }
            if e["fieldsType"] != "FieldsV1" {
                return Err(format!("{at}.fieldsType: must be FieldsV1"));
            }
            let subresource = s("subresource").filter(|s| !s.is_empty());
            // One that owns nothing is read (and so dropped) as before.
            let owns = e["fieldsV1"].as_object().is_some_and(|o| !o.is_empty());
            let unread = owns && !wanted(subresource.as_deref());
            let fields = if unread {
                FieldSet::default()
            } else {
                FieldSet::from_fields_v1(&e["fieldsV1"])
                    .ok_or_else(|| format!("{at}.fieldsV1: not a valid field set"))?
            };
            out.push(Entry {
                manager,
                operation,
                api_version: s("apiVersion").unwrap_or_default(),
                time: s("time").unwrap_or_default(),
                subresource,
                fields,
                unread,
                read_as: Some(e.clone()),
            });
        }
        Ok(Managed(out))
    }

    /// Reads the field sets [`Managed::read_for`] left unread (one that
    /// is malformed owns nothing, and goes).
    pub fn read_rest(&mut self) {
        for e in self.0.iter_mut().filter(|e| e.unread) {
            e.unread = false;
            e.fields = e
                .read_as
                .as_ref()
                .and_then(|v| FieldSet::from_fields_v1(&v["fieldsV1"]))
                .unwrap_or_default();
        }
    }

    /// The entries a client wrote, written again from their field sets: keys
    /// spelled canonically (so later writes find and take the fields however
    /// the client spelled them), nothing but an entry's own fields, the time
    /// in UTC to the second (as `metav1.Time` encodes it; one that is not a
    /// time is refused, as kube-apiserver refuses it), and entries owning
    /// nothing dropped.
    pub fn canonical(mut self) -> Result<Self, String> {
        for (i, e) in self.0.iter_mut().enumerate() {
            e.read_as = None;
            if !e.time.is_empty() {
                let t: jiff::Timestamp = e.time.parse().map_err(|err| {
                    format!("metadata.managedFields[{i}].time: {:?}: {err}", e.time)
                })?;
                e.time = t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
            }
        }
        self.0.retain(|e| !e.fields.is_empty());
        Ok(self)
    }

    /// Writes the entries into `obj` (removing the list when there are none).
    pub fn write(self, obj: &mut Value) {
        let Some(m) = obj["metadata"].as_object_mut() else {
            return;
        };
        if self.0.is_empty() {
            m.remove("managedFields");
            return;
        }
        let list: Vec<Value> = self
            .0
            .into_iter()
            .map(|e| match e.read_as {
                Some(v) => v,
                None => {
                    let v1 = e.fields.to_fields_v1();
                    e.render(v1)
                }
            })
            .collect();
        m.insert("managedFields".into(), Value::Array(list));
    }

    fn entry(
        &mut self,
        manager: &str,
        operation: &str,
        subresource: Option<&str>,
        api_version: &str,
    ) -> &mut Entry {
        let i = match self.0.iter().position(|e| {
            e.manager == manager
                && e.operation == operation
                && e.subresource.as_deref() == subresource
        }) {
            Some(i) => i,
            None => {
                self.0.push(Entry {
                    manager: manager.into(),
                    operation: operation.into(),
                    api_version: api_version.into(),
                    time: String::new(),
                    subresource: subresource.map(str::to_string),
                    fields: FieldSet::default(),
                    unread: false,
                    read_as: None,
                });
                self.0.len() - 1
            }
        };
        &mut self.0[i]
    }

    /// Records an update from `old` to `new` (both already reduced by
    /// [`owned_part`]) by `manager`, by set arithmetic over whole field sets:
    /// the reference that the write path's cheaper [`super::update`] is tested against.
    #[allow(clippy::too_many_arguments)]
    pub fn record_update(
        &mut self,
        manager: &str,
        api_version: &str,
        subresource: Option<&str>,
        old: &Value,
        new: &Value,
        schema: Schema<'_>,
        now: &str,
    ) {
        self.read_rest();
        let before = fields::set_of(old, schema);
        let after = fields::set_of(new, schema);
        let changed = FieldSet(
            after
                .0
                .iter()
                .filter(|p| !before.contains(p) || differs(old, new, p, schema))
                .cloned()
                .collect(),
        );
        let removed = before.difference(&after);
        if changed.is_empty() && removed.is_empty() {
            return;
        }
        for e in &mut self.0 {
            let had = e.fields.0.len();
            e.fields.remove_all(&changed);
            e.fields.remove_all(&removed);
            if e.fields.0.len() != had {
                e.read_as = None;
            }
        }
        let e = self.entry(manager, "Update", subresource, api_version);
        e.fields.add_all(&changed);
        e.api_version = api_version.into();
        e.time = now.into();
        e.read_as = None;
        self.0.retain(|e| !e.fields.is_empty());
    }

    /// Applies a configuration for `manager` onto `live` (the whole object;
    /// `live_owned` makes its owned part, needed only by an object's first
    /// apply): `merge_config` is what is merged in, `applied` what its owned
    /// part owns. Returns the merged object, without managedFields (for
    /// [`Managed::write`]), or the conflicts when not forced.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        manager: &str,
        api_version: &str,
        subresource: Option<&str>,
        live: &Value,
        live_owned: &dyn Fn() -> Value,
        merge_config: &Value,
        applied: &Applied,
        schema: Schema<'_>,
        force: bool,
        now: &str,
    ) -> Result<Value, Vec<Conflict>> {
        if self.0.is_empty() {
            // As Kubernetes: what was there before the first apply is someone's.
            let all = fields::set_of(&live_owned(), schema);
            if !all.is_empty() {
                self.0.push(Entry {
                    manager: "before-first-apply".into(),
                    operation: "Update".into(),
                    api_version: api_version.into(),
                    time: now.into(),
                    subresource: subresource.map(str::to_string),
                    fields: all,
                    unread: false,
                    read_as: None,
                });
            }
        }
        let mut conflicts = Vec::new();
        let mut taken: Vec<usize> = Vec::new();
        // Only entries of the same subresource conflict (the others are
        // unread). The paths of `applied` are all in the owned part, where
        // `live` holds what its owned part holds: no need to copy that out.
        for (i, e) in self.0.iter().enumerate() {
            if e.manager == manager || e.subresource.as_deref() != subresource {
                continue;
            }
            for p in applied.set.0.intersection(&e.fields.0) {
                if differs(live, &applied.config, p, schema) {
                    conflicts.push(Conflict {
                        manager: e.manager.clone(),
                        api_version: e.api_version.clone(),
                        path: p.clone(),
                    });
                    taken.push(i);
                }
            }
        }
        if !conflicts.is_empty() && !force {
            return Err(conflicts);
        }
        for (i, c) in taken.into_iter().zip(&conflicts) {
            let e = &mut self.0[i];
            e.fields.0.remove(&c.path);
            // The entry as read loses the field too (not rendered again),
            // unless it spells the field otherwise than canonically.
            let removed = e
                .read_as
                .as_mut()
                .and_then(|v| v["fieldsV1"].as_object_mut())
                .is_some_and(|tree| super::update::tree_remove(tree, &c.path));
            if !removed {
                e.read_as = None;
            }
        }
        // The live object's managedFields are not copied: the caller writes
        // the entries these become in their place.
        let mut result = without_managed_fields(live);
        merge::merge(&mut result, merge_config, schema);
        let is_own = |e: &Entry| {
            e.manager == manager
                && e.operation == "Apply"
                && e.subresource.as_deref() == subresource
        };
        let gone = self
            .0
            .iter()
            .find(|e| is_own(e))
            .map(|e| e.fields.difference(&applied.set))
            .unwrap_or_default();
        if !gone.is_empty() {
            self.read_rest();
            let mut others = FieldSet::default();
            for e in self.0.iter().filter(|e| !is_own(e)) {
                others.add_all(&e.fields);
            }
            // In order, so a list item goes before its fields are looked for.
            for p in gone.0.iter().filter(|p| !others.contains(p)) {
                fields::remove(&mut result, p, schema);
                // A map the removal leaves empty goes too, as on Kubernetes
                // (whose field sets own a map itself, `.`), unless someone
                // owns it or the apply names it.
                let mut parent = p.clone();
                while parent.len() > 1 {
                    parent.pop();
                    let empty = fields::get(&result, &parent, schema)
                        .and_then(Value::as_object)
                        .is_some_and(|o| o.is_empty());
                    if !empty || others.contains(&parent) || applied.set.contains(&parent) {
                        break;
                    }
                    fields::remove(&mut result, &parent, schema);
                }
            }
        }
        let e = self.entry(manager, "Apply", subresource, api_version);
        // An apply that changes nothing it owns leaves the entry (and so the object) as it was.
        if e.fields != applied.set || e.api_version != api_version || e.time.is_empty() {
            e.fields = applied.set.clone();
            e.api_version = api_version.into();
            e.time = now.into();
            e.read_as = applied.fields_v1.clone().map(|v1| e.render(v1));
        }
        self.0.retain(|e| e.unread || !e.fields.is_empty());
        Ok(result)
    }
}
