-- Fills the PNI schema deterministically: run with `psql -v scale=N`, N lessons, each with two
-- passages of three questions and one lesson-level question (7 questions per lesson). The same N
-- always gives the same rows, so tests and benchmarks can compare runs.
\set ON_ERROR_STOP on
TRUNCATE questions, passages, lessons;

INSERT INTO lessons (id, title, category, topic, level, summary, metadata, published, created_at, updated_at)
SELECT i,
       'Lesson ' || i || ': ' || (ARRAY['Tides', 'Volcanoes', 'Bridges', 'Bees', 'Comets', 'Rivers', 'Markets', 'Robots'])[1 + i % 8],
       (ARRAY['science', 'history', 'technology', 'nature'])[1 + i % 4],
       (ARRAY['earth', 'space', 'engineering', 'biology', 'economics', 'machines'])[1 + i % 6],
       1 + i % 5,
       CASE WHEN i % 10 = 0 THEN NULL ELSE 'A short lesson about ' || md5(i::text) END,
       jsonb_build_object('grade', 3 + i % 6, 'minutes', 20 + i % 25, 'score', round((i % 100) / 7.0, 2),
                          'tags', jsonb_build_array('reading', 'level-' || (1 + i % 5))),
       i % 13 <> 0,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute',
       timestamptz '2024-06-01 00:00:00+00' + i * interval '1 minute'
FROM generate_series(1, :scale) AS i;

INSERT INTO passages (id, lesson_id, title, body, word_count, created_at, updated_at)
SELECT 2 * l.id - 1 + p, l.id,
       'Passage ' || p + 1 || ' of lesson ' || l.id,
       repeat(md5(l.id::text || '/' || p) || ' ', 4 + (l.id + p) % 8),
       (4 + (l.id + p) % 8) * 1,
       l.created_at, l.updated_at
FROM lessons l CROSS JOIN generate_series(0, 1) AS p;

INSERT INTO questions (id, lesson_id, passage_id, position, prompt, choices, answer, difficulty, created_at, updated_at)
SELECT 7 * (l.id - 1) + q, l.id,
       CASE WHEN q <= 3 THEN 2 * l.id - 1 WHEN q <= 6 THEN 2 * l.id END,
       q,
       'Question ' || q || ' about lesson ' || l.id || '?',
       jsonb_build_array('A ' || md5(l.id || 'a' || q), 'B ' || md5(l.id || 'b' || q), 'C', 'D'),
       1 + (l.id + q) % 4,
       round(((l.id * q) % 500) / 100.0, 2),
       l.created_at, l.updated_at
FROM lessons l CROSS JOIN generate_series(1, 7) AS q;

ANALYZE lessons;
ANALYZE passages;
ANALYZE questions;
