"""``.. lxd-extra-specs::``: the ``lxd:`` flavor extra specs, generated.

Each entry comes from nova_lxd.extra_specs.VALIDATORS, the validators
Nova's API runs when an operator sets a flavor's extra specs: the key, the
value it accepts and its description, so the page says what the API
accepts.
"""

from docutils import nodes
from docutils.parsers.rst import Directive

from nova_lxd import extra_specs


def _accepts(validator):
    value = validator.value
    if value['type'] == bool:
        return 'a boolean (true/false, yes/no, on/off, 1/0)'
    if value.get('pattern'):
        return 'a string matching %s' % value['pattern']
    return value['type'].__name__


class LXDExtraSpecs(Directive):

    def run(self):
        table = nodes.definition_list()
        for validator in extra_specs.VALIDATORS:
            item = nodes.definition_list_item()
            item += nodes.term('', '', nodes.literal(text=validator.name))
            body = nodes.definition()
            body += nodes.paragraph(text=validator.description)
            accepts = nodes.paragraph()
            accepts += nodes.strong(text='Accepts: ')
            accepts += nodes.Text(_accepts(validator))
            body += accepts
            item += body
            table += item
        return [table]


def setup(app):
    app.add_directive('lxd-extra-specs', LXDExtraSpecs)
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
