//! Plain collection listings (`GET /users`, `/groups`, `/devices`, `/groups/{id}/members`): live objects,
//! `$top` per page, `$skiptoken` links.

use crate::body::{append, append_json};
use crate::directory::{Directory, Life};
use crate::ids::ObjectRef;
use crate::props::{default_props, odata_type, prop_id, prop_name, PropId};
use crate::token::ListState;
use entrasync_model::ObjectClass;

pub struct ListPage {
    pub value: Vec<u8>,
    pub objects: usize,
    pub next: Option<ListState>,
}

fn write_object(out: &mut Vec<u8>, dir: &Directory, obj: ObjectRef, props: &[PropId], with_type: bool) {
    if !out.is_empty() {
        out.push(b',');
    }
    out.push(b'{');
    if with_type {
        append(out, format_args!("\"@odata.type\":\"{}\",", odata_type(obj.class)));
    }
    append(out, format_args!("\"id\":\"{}\"", dir.codec.encode(obj)));
    let values = dir.attributes(obj);
    for &prop in props {
        if let Some(value) = &values[usize::from(prop)] {
            append(out, format_args!(",\"{}\":", prop_name(obj.class, prop)));
            append_json(out, value);
        }
    }
    out.push(b'}');
}

fn member_props(class: ObjectClass, names: Option<&[String]>) -> Vec<PropId> {
    match names {
        None => default_props(class),
        Some(names) => names.iter().filter_map(|n| prop_id(class, n)).collect(),
    }
}

pub fn list_page(dir: &Directory, state: &ListState) -> ListPage {
    let mut out = Vec::with_capacity(state.top as usize * 300);
    let top = state.top as usize;
    if let Some(group) = state.group {
        let mut emitted = 0;
        let mut last = None;
        let mut more = false;
        let live = |m: &u32| dir.record(ObjectRef::unpack(*m)).is_some_and(|r| r.life == Life::Live);
        for packed in dir.members[group as usize].current_after(state.member_after).filter(live) {
            if emitted == top {
                more = true;
                break;
            }
            let member = ObjectRef::unpack(packed);
            let props = member_props(member.class, state.member_select.as_deref());
            write_object(&mut out, dir, member, &props, true);
            emitted += 1;
            last = Some(packed);
        }
        let next = more.then(|| ListState { member_after: last, ..state.clone() });
        return ListPage { value: out, objects: emitted, next };
    }
    let records = dir.records(state.class);
    let mut position = state.cursor as usize;
    let mut emitted = 0;
    while position < records.len() && emitted < top {
        if records[position].life == Life::Live {
            write_object(&mut out, dir, ObjectRef::new(state.class, position as u32), &state.select.props, false);
            emitted += 1;
        }
        position += 1;
    }
    let more = records[position.min(records.len())..].iter().any(|r| r.life == Life::Live);
    let next = more.then(|| ListState { cursor: position as u32, ..state.clone() });
    ListPage { value: out, objects: emitted, next }
}
