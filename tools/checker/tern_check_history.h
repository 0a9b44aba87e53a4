/*  tern_check_history.h - a history as tern-check reads it: one event per
    line of JSON, checked against a table of event kinds and their fields.

    The history format is documented in docs/checker.md. This file turns its
    lines into fixed-size events with interned names, so that the rules in
    tern_check.c compare small integers and never see JSON. It is a test
    tool's reader: bad input is reported with FILE:LINE and the reading
    stops; nothing here asserts on what it reads.
*/
#ifndef TERN_CHECK_HISTORY_H_INCLUDED
#define TERN_CHECK_HISTORY_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  The kinds of event, in the order of the kind table.
typedef enum {
    CK_PUBLISH, //  one publish attempt and its outcome
    CK_DELIVER, //  one delivery to a consumer of a group
    CK_ACK,     //  a consumer acknowledged a delivery
    CK_NODE,    //  a node whose log is listed (for one topic or all)
    CK_STORED,  //  one message in a node's log, in log order
    CK_GROUP,   //  a group that consumes a topic
    CK_DLQ,     //  a message in a group's dead-letter queue
    CK_EXPIRED, //  a message removed by expiry or retention
    CK_KINDS
} ck_kind_t;

//  The fields an event can carry; v[field] holds its value.
typedef enum {
    CK_CLIENT,         //  name: the publishing client
    CK_PRODUCER,       //  name: producer id ("" = none)
    CK_PRODUCER_SEQ,   //  number: producer sequence
    CK_TOPIC,          //  name
    CK_OUTCOME,        //  "ok" (1) or "err" (0)
    CK_CODE,           //  number: the error code of an "err" outcome
    CK_MSG_ID,         //  number
    CK_SEQ,            //  number: per-topic sequence
    CK_DUPLICATE,      //  boolean: the broker had stored this key already
    CK_GROUP_NAME,     //  name: consumer group
    CK_CONSUMER,       //  name: the consuming client
    CK_NODE_NAME,      //  name: the node whose state this is
    CK_DELIVERY_COUNT, //  number: 1 on first delivery
    CK_DC,             //  name: the DC of a client or node (cross-DC histories)
    CK_FIELDS
} ck_field_t;

//  One history line.
typedef struct {
    ck_kind_t kind;        //  what happened
    uint32_t file;         //  index of its file in the history's files
    uint32_t line;         //  its line number in that file, from 1
    uint32_t has;          //  bit (1 << field) for every field present
    uint64_t v[CK_FIELDS]; //  numbers, booleans (0/1) and name ids
} ck_event_t;

//  Every event of every file read, in order.
typedef struct {
    ck_event_t *events; //  owned array
    size_t count;       //  events read
    size_t cap;         //  events allocated
    char **files;       //  owned copies of the paths read, in order
    size_t file_count;  //  number of paths
    zhashx_t *name_ids; //  name text -> id + 1
    char **names;       //  id -> owned text; id 0 is ""
    size_t name_count;  //  number of names
    size_t name_cap;    //  names allocated
} ck_history_t;

//  Creates an empty history. Caller owns the return value.
ck_history_t *ck_history_new(void);

//  Frees SELF and everything it holds. Safe on NULL; nulls *SELF_P.
void ck_history_destroy(ck_history_t **self_p);

//  Appends the events of PATH ("-" = standard input). Blank lines and lines
//  starting with '#' are skipped. Returns true, or false after printing
//  "tern-check: PATH:LINE: reason" (or why PATH cannot be read) on stderr;
//  the events read before the bad line stay.
bool ck_history_read(ck_history_t *self, const char *path);

//  The text of name ID. Borrowed; valid until SELF is destroyed.
const char *ck_history_name(const ck_history_t *self, uint64_t id);

//  The name of event kind KIND ("publish", ...). Static.
const char *ck_kind_name(ck_kind_t kind);

//  "PATH:LINE" of EV into BUF (CAP bytes); returns BUF.
const char *ck_history_where(const ck_history_t *self, const ck_event_t *ev, char *buf, size_t cap);

#endif
