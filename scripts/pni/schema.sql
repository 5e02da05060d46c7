-- The PNI sample schema: lessons, their reading passages, and questions that belong to a lesson and
-- (usually) to one of its passages. Recreated from scratch each time.
SET client_min_messages = warning;
DROP TABLE IF EXISTS questions, passages, lessons;

CREATE TABLE lessons (
    id          integer PRIMARY KEY,
    title       text NOT NULL,
    category    text NOT NULL,
    topic       text NOT NULL,
    level       smallint NOT NULL,
    summary     text,
    metadata    jsonb NOT NULL DEFAULT '{}',
    published   boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE passages (
    id          integer PRIMARY KEY,
    lesson_id   integer NOT NULL REFERENCES lessons (id),
    title       text NOT NULL,
    body        text NOT NULL,
    word_count  integer NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE questions (
    id          integer PRIMARY KEY,
    lesson_id   integer NOT NULL REFERENCES lessons (id),
    passage_id  integer REFERENCES passages (id),
    position    smallint NOT NULL,
    prompt      text NOT NULL,
    choices     jsonb NOT NULL,
    answer      smallint NOT NULL,
    difficulty  numeric(4, 2) NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE INDEX ON passages (lesson_id);
CREATE INDEX ON questions (lesson_id);
CREATE INDEX ON questions (passage_id);
