/*  tern_config_print.c - ternd's configuration written out.

    --print-config (tern_config_print: the effective configuration as a ZPL
    file that loads back), --help (k_print_help) and the key reference of
    docs/operations.md (tern_config_reference), all from the table in
    tern_config_keys.c, so the three never disagree with the parser.
*/
#include "tern_config_priv.h"

#include <czmq.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  ---------------------------------------------------------------------
//  Output: ZPL, --help, the reference table

static void s_print_string(FILE *out, const char *value) {
    //  ZPL has no escapes: quote with the character the value lacks.
    char quote = strchr(value, '"') ? '\'' : '"';
    fprintf(out, "%c%s%c", quote, value, quote);
}

void tern_config_print(const tern_config_t *config, FILE *out) {
    fprintf(out, "#   ternd configuration (ZPL). Load it with: ternd -c FILE\n");
    const char *section = "";
    size_t section_len = 0;
    char text[64];
    for (size_t i = 0; i < k_key_count; i++) {
        const k_key_t *key = &k_keys[i];
        const void *field = k_cfield(config, key);
        size_t len = strcspn(key->path, "/");
        if (len != section_len || strncmp(key->path, section, len) != 0) {
            fprintf(out, "%.*s\n", (int)len, key->path);
            section = key->path;
            section_len = len;
        }
        const char *name = key->path + len + 1;
        switch (key->type) {
            case S_STRING:
                fprintf(out, "    %s = ", name);
                if (k_off_allowed(key)) {
                    s_print_string(out, *(const char *)field ? field : "off");
                } else {
                    s_print_string(out, field);
                }
                fprintf(out, "\n");
                break;
            case S_BOOL:
                fprintf(out, "    %s = %s\n", name, *(const bool *)field ? "true" : "false");
                break;
            case S_U32:
                fprintf(out, "    %s = %u\n", name, *(const uint32_t *)field);
                break;
            case S_DURATION:
                fprintf(out, "    %s = %s\n", name,
                        k_format_duration(*(const uint64_t *)field, text, sizeof text));
                break;
            case S_SIZE:
                fprintf(out, "    %s = %s\n", name,
                        k_format_size(*(const uint64_t *)field, text, sizeof text));
                break;
            case S_ENUM: {
                int index;
                memcpy(&index, field, sizeof index);
                const char *choice = key->choices;
                for (int at = 0; at < index && *choice; at++) {
                    choice += strcspn(choice, "|") + (choice[strcspn(choice, "|")] == '|');
                }
                fprintf(out, "    %s = %.*s\n", name, (int)strcspn(choice, "|"), choice);
                break;
            }
            case S_PEERS:
                fprintf(out, "    %s\n", name);
                for (uint32_t p = 0; p < config->peer_count && p < TERN_PEERS_MAX; p++) {
                    fprintf(out, "        %s = ", config->peers[p].name);
                    s_print_string(out, config->peers[p].endpoint);
                    fprintf(out, "\n");
                }
                break;
        }
    }
}

//  Writes TEXT indented by INDENT, broken at spaces before column WIDTH.
static void s_print_wrapped(FILE *out, const char *text, int indent, int width) {
    while (*text) {
        int room = width - indent;
        int len = (int)strlen(text);
        if (len > room) {
            len = room;
            while (len > 0 && text[len] != ' ') {
                len--;
            }
            if (len == 0) {
                len = (int)strcspn(text, " "); //  one word longer than the line
            }
        }
        fprintf(out, "%*s%.*s\n", indent, "", len, text);
        text += len;
        while (*text == ' ') {
            text++;
        }
    }
}

void k_print_help(FILE *out) {
    fprintf(out,
            "Usage: ternd [-c FILE] [OPTION]...\n"
            "ternd, the tern message broker node. It runs on its embedded defaults; a ZPL\n"
            "file given with -c (applied first, wherever it appears) and then the flags, in\n"
            "order, override them. Every file key has a flag: file key -> flag.\n\n"
            "  -c, --config FILE              load a ZPL configuration file\n"
            "  -v, --verbose                  same as --verbose=true\n"
            "  -h, --help                     print this help and exit\n"
            "      --version                  print the version and exit\n"
            "      --print-config             print the effective configuration as ZPL "
            "and exit\n"
            "      --config-reference         print every key as a Markdown table and exit\n\n");
    for (size_t i = 0; i < k_key_count; i++) {
        const k_key_t *key = &k_keys[i];
        char flag[64];
        snprintf(flag, sizeof flag, "--%s%s%s", key->flag, *key->arg ? " " : "", key->arg);
        fprintf(out, "      %-30s %s", flag, key->path);
        if (key->type == S_PEERS) {
            fprintf(out, "/NAME (repeatable)\n");
        } else {
            fprintf(out, " (default %s%s%s)\n", *key->def ? "" : "\"", key->def,
                    *key->def ? "" : "\"");
        }
        s_print_wrapped(out, key->help, 10, 78);
    }
    fprintf(out, "\nDurations: 250ms, 30s, 5m, 2h, 7d (a bare number is ms). Sizes: 512, 64K, "
                 "1M, 2G, 1T\n(K = 1024; a bare number is bytes). Booleans: true/false, "
                 "yes/no, on/off, 1/0.\nA flag takes its value as --flag VALUE or "
                 "--flag=VALUE.\n");
}

void tern_config_reference(FILE *out) {
    fprintf(out, "| Key (ZPL) | Flag | Default | Meaning |\n");
    fprintf(out, "|---|---|---|---|\n");
    for (size_t i = 0; i < k_key_count; i++) {
        const k_key_t *key = &k_keys[i];
        char expected[160] = "";
        if (key->type != S_STRING && key->type != S_PEERS) {
            k_expected(key, expected, sizeof expected);
        }
        fprintf(out, "| `%s%s` | `--%s%s%s` | %s%s%s | %s", key->path,
                key->type == S_PEERS ? "/NAME" : "", key->flag, *key->arg ? " " : "", key->arg,
                *key->def ? "`" : "", *key->def ? key->def : "(none)", *key->def ? "`" : "",
                key->help);
        if (*expected) {
            //  A bare | would end the table cell.
            fprintf(out, " Expects ");
            for (const char *p = expected; *p; p++) {
                if (*p == '|') {
                    fputc('\\', out);
                }
                fputc(*p, out);
            }
            fprintf(out, ".");
        }
        fprintf(out, " |\n");
    }
}
