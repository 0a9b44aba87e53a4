/*  tern_config_parse.c - ternd's configuration from ZPL files and flags.

    tern_config_load reads one ZPL file (`-c FILE`) and
    tern_config_parse_args the whole command line: files first, in order,
    then the flags over them, then tern_config_check. Each value goes
    through k_apply (tern_config.c) by its key in the table
    (tern_config_keys.c); an unknown key or flag gets a suggestion.
*/
#include "tern_config_priv.h"
#include "tern_version.h"

#include <czmq.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_FILE_MAX (1024 * 1024) //  a config file larger than this is a mistake

//  ---------------------------------------------------------------------
//  ZPL files

char *tern_config_read_file(const char *path, size_t max, char *why, size_t why_len) {
    char reason[64] = "";
    char *text = NULL;
    FILE *file = fopen(path, "r");
    if (!file) {
        snprintf(reason, sizeof reason, "%s", strerror(errno));
    } else {
        text = malloc(max + 1);
        size_t len = text ? fread(text, 1, max + 1, file) : 0;
        //  Every file we read is text: a NUL would silently end it early (a
        //  file of zeros, what a power cut can leave, would read as empty).
        const char *nul = text ? memchr(text, 0, len) : NULL;
        if (!text || ferror(file)) {
            snprintf(reason, sizeof reason, "read error");
        } else if (len > max) {
            snprintf(reason, sizeof reason, "too large");
        } else if (nul) {
            snprintf(reason, sizeof reason, "NUL byte at offset %zu (not a text file)",
                     (size_t)(nul - text));
        } else {
            text[len] = 0;
        }
        fclose(file);
    }
    if (reason[0]) {
        free(text);
        text = NULL;
    }
    if (why && why_len) {
        snprintf(why, why_len, "%s", reason);
    }
    return text;
}

static tern_err_t s_load_file(tern_config_t *config, const char *path, char *errbuf,
                              size_t errlen) {
    //  Read the file ourselves: zconfig_load leaks its zfile_t when the
    //  text does not parse (czmq 4.2.1), and this gives a precise error.
    char why[64];
    char *text = tern_config_read_file(path, S_FILE_MAX, why, sizeof why);
    if (!text) {
        return k_fail(errbuf, errlen, "config: cannot read \"%s\": %s%s", path, why,
                      streq(why, "too large") ? " (over 1 MiB)" : "");
    }
    zconfig_t *root = zconfig_str_load(text);
    free(text);
    if (!root) {
        //  czmq has logged the line and the reason.
        return k_fail(errbuf, errlen,
                      "config: \"%s\" is not valid ZPL (czmq's zconfig logged the line)", path);
    }
    char where[1100];
    snprintf(where, sizeof where, " (in %s)", path);
    tern_err_t rc = TERN_OK;
    for (zconfig_t *section = zconfig_child(root); section && rc == TERN_OK;
         section = zconfig_next(section)) {
        const char *section_name = zconfig_name(section);
        const char *section_value = zconfig_value(section);
        if (!zconfig_child(section)) {
            //  A top-level "name = value" or an empty section.
            char prefix[80];
            snprintf(prefix, sizeof prefix, "%s/", section_name);
            bool known = false;
            for (size_t i = 0; i < k_key_count && !known; i++) {
                known = strncmp(k_keys[i].path, prefix, strlen(prefix)) == 0;
            }
            if (known && !(section_value && *section_value)) {
                continue;
            }
            const char *near = k_suggest(section_name, false);
            if (known) {
                rc = k_fail(errbuf, errlen,
                            "config: %s = \"%s\": expected a section without a value%s",
                            section_name, section_value, where);
            } else {
                rc = k_fail(errbuf, errlen, "config: unknown key \"%s\"%s%s%s%s", section_name,
                            near ? "; did you mean \"" : "", near ? near : "", near ? "\"?" : "",
                            where);
            }
            break;
        }
        if (section_value && *section_value) {
            rc = k_fail(errbuf, errlen, "config: %s = \"%s\": expected a section without a value%s",
                        section_name, section_value, where);
            break;
        }
        for (zconfig_t *item = zconfig_child(section); item && rc == TERN_OK;
             item = zconfig_next(item)) {
            char key_path[160];
            snprintf(key_path, sizeof key_path, "%s/%s", section_name, zconfig_name(item));
            const char *value = zconfig_value(item) ? zconfig_value(item) : "";
            const k_key_t *key = k_key_by_path(key_path);
            if (!key) {
                const char *near = k_suggest(key_path, false);
                rc = k_fail(errbuf, errlen, "config: unknown key \"%s\"%s%s%s%s", key_path,
                            near ? "; did you mean \"" : "", near ? near : "", near ? "\"?" : "",
                            where);
            } else if (key->type == S_PEERS) {
                if (*value) {
                    rc = k_fail(errbuf, errlen,
                                "config: repl/peers = \"%s\": expected a section of "
                                "NAME = ENDPOINT lines%s",
                                value, where);
                }
                for (zconfig_t *peer = zconfig_child(item); peer && rc == TERN_OK;
                     peer = zconfig_next(peer)) {
                    if (zconfig_child(peer)) {
                        rc = k_fail(errbuf, errlen,
                                    "config: repl/peers/%s: expected NAME = ENDPOINT, not a "
                                    "section%s",
                                    zconfig_name(peer), where);
                        break;
                    }
                    const char *endpoint = zconfig_value(peer) ? zconfig_value(peer) : "";
                    rc = k_add_peer(config, zconfig_name(peer), endpoint, where, errbuf, errlen);
                }
            } else if (zconfig_child(item)) {
                rc = k_fail(errbuf, errlen, "config: %s: expected a value, not a section%s",
                            key_path, where);
            } else {
                rc = k_apply(config, key, value, where, errbuf, errlen);
            }
        }
    }
    zconfig_destroy(&root);
    return rc;
}

tern_err_t tern_config_load(tern_config_t *config, const char *path, char *errbuf, size_t errlen) {
    tern_err_t rc = s_load_file(config, path, errbuf, errlen);
    return rc == TERN_OK ? tern_config_check(config, errbuf, errlen) : rc;
}

//  ---------------------------------------------------------------------
//  Command line

typedef enum {
    S_OPT_KEY,      //  a table key (KEY, VALUE)
    S_OPT_CONFIG,   //  -c FILE
    S_OPT_HELP,     //  -h, --help
    S_OPT_VERSION,  //  --version
    S_OPT_PRINT,    //  --print-config
    S_OPT_REFERENCE //  --config-reference
} s_opt_kind_t;

typedef struct {
    s_opt_kind_t kind;  //  what it is
    const k_key_t *key; //  S_OPT_KEY: the key
    const char *value;  //  its value (borrowed from argv)
    const char *flag;   //  the flag as given, for errors
} s_opt_t;

//  Reads the option at argv[*index] (and its value) and advances *index.
static tern_err_t s_next_opt(int argc, char **argv, int *index, s_opt_t *opt, char *errbuf,
                             size_t errlen) {
    const char *arg = argv[(*index)++];
    memset(opt, 0, sizeof(*opt));
    opt->flag = arg;
    const char *name;
    size_t name_len;
    const char *inline_value = NULL;
    if (strncmp(arg, "--", 2) == 0 && arg[2]) {
        name = arg + 2;
        const char *equals = strchr(name, '=');
        name_len = equals ? (size_t)(equals - name) : strlen(name);
        inline_value = equals ? equals + 1 : NULL;
    } else if (arg[0] == '-' && arg[1] && arg[1] != '-') {
        //  Short options: -c FILE, -cFILE, -v, -h.
        name = arg + 1;
        name_len = 1;
        inline_value = arg[2] ? arg + 2 : NULL;
    } else {
        return k_fail(errbuf, errlen,
                      "config: unexpected argument \"%s\": expected an option (see ternd "
                      "--help)",
                      arg);
    }
#define S_IS(word) (name_len == strlen(word) && strncmp(name, word, name_len) == 0)
    bool takes_value = true;
    if (S_IS("c") || S_IS("config")) {
        opt->kind = S_OPT_CONFIG;
    } else if (S_IS("h") || S_IS("help")) {
        opt->kind = S_OPT_HELP;
        takes_value = false;
    } else if (S_IS("version")) {
        opt->kind = S_OPT_VERSION;
        takes_value = false;
    } else if (S_IS("print-config")) {
        opt->kind = S_OPT_PRINT;
        takes_value = false;
    } else if (S_IS("config-reference")) {
        opt->kind = S_OPT_REFERENCE;
        takes_value = false;
    } else if (S_IS("v")) {
        opt->kind = S_OPT_KEY;
        opt->key = k_key_by_path("node/verbose");
        takes_value = false;
    } else if ((opt->key = k_key_by_flag(name, name_len)) != NULL) {
        opt->kind = S_OPT_KEY;
        takes_value = opt->key->type != S_BOOL;
    } else {
        char unknown[80];
        snprintf(unknown, sizeof unknown, "%.*s", (int)name_len, name);
        const char *near = name_len > 1 ? k_suggest(unknown, true) : NULL;
        return k_fail(errbuf, errlen, "config: unknown option \"%.*s\"%s%s%s (see ternd --help)",
                      (int)(name - arg + name_len), arg, near ? "; did you mean --" : "",
                      near ? near : "", near ? "?" : "");
    }
#undef S_IS
    if (takes_value) {
        if (inline_value) {
            opt->value = inline_value;
        } else if (*index < argc) {
            opt->value = argv[(*index)++];
        } else {
            return k_fail(errbuf, errlen, "config: option \"%s\" needs a value (%s)", arg,
                          opt->key ? opt->key->arg : "FILE");
        }
    } else if (opt->kind == S_OPT_KEY) {
        opt->value = inline_value ? inline_value : "true";
    } else if (inline_value) {
        return k_fail(errbuf, errlen, "config: option \"%s\" takes no value", arg);
    }
    return TERN_OK;
}

tern_err_t tern_config_parse_args(tern_config_t *config, int argc, char **argv, FILE *out,
                                  bool *exit_now, char *errbuf, size_t errlen) {
    *exit_now = false;
    s_opt_t opt;
    //  Pass 1: --help and --version win over everything; -c files load now.
    bool print = false;
    for (int index = 1; index < argc;) {
        tern_err_t rc = s_next_opt(argc, argv, &index, &opt, errbuf, errlen);
        if (rc == TERN_OK &&
            (opt.kind == S_OPT_HELP || opt.kind == S_OPT_VERSION || opt.kind == S_OPT_REFERENCE)) {
            if (opt.kind == S_OPT_HELP) {
                k_print_help(out);
            } else if (opt.kind == S_OPT_REFERENCE) {
                tern_config_reference(out);
            } else {
                fprintf(out, "ternd %d.%d.%d\n", TERN_VERSION_MAJOR, TERN_VERSION_MINOR,
                        TERN_VERSION_PATCH);
            }
            *exit_now = true;
            return TERN_OK;
        }
    }
    for (int index = 1; index < argc;) {
        tern_err_t rc = s_next_opt(argc, argv, &index, &opt, errbuf, errlen);
        if (rc != TERN_OK) {
            return rc;
        }
        if (opt.kind == S_OPT_CONFIG) {
            rc = s_load_file(config, opt.value, errbuf, errlen);
            if (rc != TERN_OK) {
                return rc;
            }
        }
        print |= opt.kind == S_OPT_PRINT;
    }
    //  Pass 2: the flags, in order.
    for (int index = 1; index < argc;) {
        tern_err_t rc = s_next_opt(argc, argv, &index, &opt, errbuf, errlen);
        if (rc == TERN_OK && opt.kind == S_OPT_KEY) {
            char where[96];
            snprintf(where, sizeof where, " (from --%s)", opt.key->flag);
            rc = k_apply(config, opt.key, opt.value, where, errbuf, errlen);
        }
        if (rc != TERN_OK) {
            return rc;
        }
    }
    tern_err_t rc = tern_config_check(config, errbuf, errlen);
    if (rc == TERN_OK && print) {
        tern_config_print(config, out);
        *exit_now = true;
    }
    return rc;
}
