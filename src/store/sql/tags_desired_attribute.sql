-- One tag mapping's (value, user) pairs from a user attribute, for the users of one batch range
-- ($2, $3]: the effective mapped attribute $8 when the tenant's attribute mappings produce it, else the
-- raw attribute at path $7. A string, number or boolean is one value; an array gives one per element;
-- values are trimmed, and empty ones or ones over 256 characters give none.
INSERT INTO tag_desired (mapping_id, kind, key, key_norm, value, value_norm, object_id)
SELECT DISTINCT $4::bigint, $5::text, $6::text, lower(coalesce($6::text, '')), v.value,
       CASE WHEN $5::text = 'asset_group' THEN lower(v.value) ELSE v.value END, o.object_id
FROM directory_objects o
CROSS JOIN LATERAL (
    SELECT coalesce(
        nullif((coalesce(o.mapped_on_create, '{}'::jsonb) || coalesce(o.mapped::jsonb, '{}'::jsonb)) -> $8::text,
               'null'::jsonb),
        o.attrs #> $7::text[]) AS j
) AS s
CROSS JOIN LATERAL (
    SELECT btrim(e #>> '{}') AS value
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(s.j) = 'array' THEN s.j ELSE '[]'::jsonb END) AS e
    WHERE jsonb_typeof(e) IN ('string', 'number', 'boolean')
    UNION ALL
    SELECT btrim(s.j #>> '{}') WHERE jsonb_typeof(s.j) IN ('string', 'number', 'boolean')
) AS v
WHERE o.tenant_id = $1 AND o.object_class = 'user' AND o.deleted_at IS NULL
  AND ($2::uuid IS NULL OR o.object_id > $2::uuid) AND ($3::uuid IS NULL OR o.object_id <= $3::uuid)
  AND length(v.value) BETWEEN 1 AND 256
