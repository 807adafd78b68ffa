"""Horizon in headless Chromium: log in, the server, its console and log.

Run by tests/cloud/horizon-flow (which makes the server) with Horizon's
venv (Selenium) and Debian's /usr/bin/chromium and /usr/bin/chromedriver.
Environment: HORIZON_URL, HORIZON_USER, HORIZON_PASSWORD, HORIZON_SERVER
(the server's name), HORIZON_FLOW_ARTIFACTS (a screenshot and the page
source of every step go there); HORIZON_IMAGE and HORIZON_FLAVOR: launch
the server with them through the launch wizard (else it is there
already).
"""

import os
import sys
import time

from selenium.common import exceptions
from selenium import webdriver
from selenium.webdriver.chrome import service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

URL = os.environ['HORIZON_URL'].rstrip('/')
SERVER = os.environ['HORIZON_SERVER']
ARTIFACTS = os.environ['HORIZON_FLOW_ARTIFACTS']
T0 = time.monotonic()


def say(text):
    print('horizon-flow: %s (%d s)' % (text, time.monotonic() - T0),
          flush=True)


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = '/usr/bin/chromium'
    for arg in ('--headless=new', '--no-sandbox', '--disable-gpu',
                '--disable-dev-shm-usage', '--window-size=1280,900'):
        options.add_argument(arg)
    return webdriver.Chrome(
        service=service.Service('/usr/bin/chromedriver'), options=options)


class Flow(object):

    def __init__(self, driver):
        self.driver = driver
        self.step = 0

    def keep(self, name):
        """A screenshot and the page's source of this step."""
        self.step += 1
        base = os.path.join(ARTIFACTS, '%02d-%s' % (self.step, name))
        self.driver.save_screenshot(base + '.png')
        with open(base + '.html', 'w') as f:
            f.write(self.driver.page_source)

    def wait(self, condition, timeout=60):
        return WebDriverWait(self.driver, timeout, 0.5).until(condition)

    def text_shows(self, text, timeout=60):
        self.wait(lambda d: text in d.find_element(By.TAG_NAME, 'body').text,
                  timeout)

    def log_in(self):
        self.driver.get(URL + '/auth/login/')
        self.wait(ec.presence_of_element_located((By.ID, 'id_username')))
        self.keep('login')
        self.driver.find_element(By.ID, 'id_username').send_keys(
            os.environ['HORIZON_USER'])
        self.driver.find_element(By.ID, 'id_password').send_keys(
            os.environ['HORIZON_PASSWORD'] + Keys.ENTER)
        self.wait(lambda d: '/auth/login' not in d.current_url)
        self.keep('logged-in')
        say('logged in as %s' % os.environ['HORIZON_USER'])

    def launch(self, image, flavor):
        """The launch wizard: name, image, flavor, Launch Instance.

        A network, if the cloud has one, Horizon allocates itself: the
        only one there is.
        """
        self.driver.get(URL + '/project/instances/')
        self.wait(ec.element_to_be_clickable(
            (By.ID, 'instances__action_launch-ng'))).click()
        self.wait(ec.visibility_of_element_located((By.ID, 'name')))
        self.driver.find_element(By.ID, 'name').send_keys(SERVER)
        self.keep('launch-details')
        for step, item in (('Source', image), ('Flavor', flavor)):
            self.driver.find_element(By.XPATH, (
                '//div[contains(@class, "wizard-nav")]//li[normalize-space(.)'
                '="%s"]' % step)).click()
            allocate = self.wait(ec.element_to_be_clickable((By.XPATH, (
                '//div[contains(@class, "step") and not(contains(@class, '
                '"ng-hide"))]//tr[.//td[normalize-space(.)="%s"]]//button'
                '[contains(@class, "fa-arrow-up")]' % item))))
            allocate.click()
            self.keep('launch-%s' % step.lower())
        self.wait(ec.element_to_be_clickable(
            (By.CSS_SELECTOR, '.modal-footer button.finish'))).click()
        self.wait(ec.invisibility_of_element_located(
            (By.CSS_SELECTOR, '.modal-dialog')))
        say('launched %s with %s and %s through the wizard'
            % (SERVER, image, flavor))

    def server_active(self):
        """The server's row on the instances page says Active: its id."""
        self.driver.get(URL + '/project/instances/')
        row = (By.CSS_SELECTOR, 'tr[data-display="%s"]' % SERVER)
        self.wait(ec.presence_of_element_located(row))
        self.wait(lambda d: 'Active' in d.find_element(*row).text, 120)
        self.keep('instances')
        server_id = self.driver.find_element(*row).get_attribute(
            'data-object-id')
        say('%s is Active on the instances page' % SERVER)
        return server_id

    def console(self, server_id):
        """Its Console tab: the serial console answers what is typed."""
        self.driver.get('%s/project/instances/%s/?tab=instance_details__'
                        'console' % (URL, server_id))
        frame = self.wait(ec.presence_of_element_located(
            (By.ID, 'console_embed')))
        self.keep('console-tab')
        self.driver.switch_to.frame(frame)
        # term.js takes keys only once its terminal has the focus, which
        # a click gives it (as a user clicks into it).
        self.wait(ec.element_to_be_clickable(
            (By.CSS_SELECTOR, '.terminal'))).click()
        keys = ActionChains(self.driver)
        # Enter wakes busybox's "press Enter" shell; again until a prompt.
        for _ in range(30):
            keys.send_keys(Keys.ENTER).perform()
            try:
                self.text_shows('# ', 5)
                break
            except exceptions.TimeoutException:
                continue
        keys.send_keys('echo horizon-$((6 * 7))' + Keys.ENTER).perform()
        self.text_shows('horizon-42')
        self.keep('console-answer')
        self.driver.switch_to.default_content()
        say('Console tab: typed a command, read its answer')

    def log(self, server_id):
        """Its Log tab: the console log, the busybox image's boot lines."""
        self.driver.get('%s/project/instances/%s/?tab=instance_details__log'
                        % (URL, server_id))
        self.text_shows('nova-lxd-busybox: booted')
        self.keep('log-tab')
        say('Log tab: the boot lines are there')


def main():
    driver = browser()
    flow = Flow(driver)
    try:
        flow.log_in()
        if os.environ.get('HORIZON_IMAGE'):
            flow.launch(os.environ['HORIZON_IMAGE'],
                        os.environ['HORIZON_FLAVOR'])
        server_id = flow.server_active()
        flow.console(server_id)
        flow.log(server_id)
    except Exception as e:
        try:
            driver.switch_to.default_content()
            flow.keep('failed')
        except Exception:
            pass
        sys.exit('horizon-flow: FAILED at step %d (%s): %r; screenshots '
                 'in %s' % (flow.step + 1, type(e).__name__, e, ARTIFACTS))
    finally:
        driver.quit()


if __name__ == '__main__':
    main()
